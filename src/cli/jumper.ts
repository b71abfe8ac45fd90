#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * `jumper`: the command-line front of the library. Parses arguments, builds
 * an options object, runs the role; no tunnel logic lives here.
 *
 * The shebang caps V8's young generation at 1 MiB per semi-space: a jumper
 * holding thousands of streams otherwise grows it to tens of MiB while the
 * streams open (docs/performance.md, memory per held connection).
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { handshakePrimitives } from '../crypto/handshake-primitives.js';
import { InvalidArgumentError } from '../errors.js';
import { readKeyFile, type TunnelKey } from '../keys/key-file.js';
import { DEFAULTS, formatDurationMs, MIN_HEALTH_INTERVAL_MS, MIN_LEASE_TTL_MS, type PreconnectSetting } from '../options.js';
import { createClient, type TunnelProtocol } from '../roles/client.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import { addAcceptCommand } from './accept-command.js';
import { addPipeCommand } from './pipe-command.js';
import { addSpipedCommand } from './spiped-command.js';
import { createForward } from '../roles/forward.js';
import { EXEC_PREFIX } from '../activation/exec-target.js';
import { isDialledTarget } from '../roles/connect-plan.js';
import type { CommonOptions } from '../roles/jumper.js';
import { createServer } from '../roles/server.js';
import { STRATEGIES, type StrategyName } from '../balance/strategy.js';
import { createBalancer } from '../roles/balancer.js';
import { die, EXIT_USAGE } from './fail.js';
import { createLogger, LOG_LEVELS, type LogFormat } from './logger.js';
import { collect, durationAtLeast, parseDuration, parsePositiveInt, parsePreconnect, parseTimeout } from './parse.js';
import { refuseUnless } from './option-checks.js';
import { claimSystemdNotify } from '../activation/sd-notify.js';
import { addEtcdAccessOptions, dropIpServerNameWarning, etcdAccessOption, type EtcdFlags } from './etcd-flags.js';
import { protocolOptions, type ProtocolFlags } from './protocol-flags.js';
import { runRole } from './run-role.js';
import { addOperateOptions, addProxyProtocolOption, operateOptions, proxyProtocolOption, type OperateFlags } from './operate-options.js';
import { addRunCommand } from './run-command.js';
import { addStatusCommand } from './status-command.js';

const PROGRAM = 'jumper';
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface CommonFlags extends OperateFlags {
  listen: string;
  connect?: string[];
  discover?: string;
  strategy: StrategyName;
  ejectAfter: number;
  healthInterval?: number;
  maxConnections: number;
  connectTimeout: number;
  keepalive: boolean;
  drainTimeout: number;
  logLevel: string;
  logFormat?: LogFormat;
  listenNetns?: string;
  connectNetns?: string;
}

interface RegisterFlags {
  register?: string;
  advertise?: string;
  weight?: number;
  leaseTtl: number;
  deregisterDelay: number;
}

interface StartFlags {
  start?: string;
  startTimeout: number;
  idleStop?: number;
}

interface KeyFlags extends ProtocolFlags {
  key: string[];
  handshakeTimeout: number;
  allowInsecureKey?: boolean;
}

/** A duration option whose default is shown as it would be typed ("5s"); `parse` sets its floor (timeouts are at least 1 ms). */
function durationOption(flags: string, description: string, defaultMs: number, parse: (value: string) => number = parseDuration): Option {
  return new Option(flags, description).argParser(parse).default(defaultMs, formatDurationMs(defaultMs));
}

/** Options of every role; `targets` adds --connect (the balancer has --backend instead). */
function addCommonOptions(cmd: Command, targets: 'connect' | 'backend' = 'connect'): Command {
  cmd.requiredOption('-l, --listen <addr>', 'where to accept: host:port, [v6addr]:port, /absolute/path.sock, systemd, systemd:NAME or fd:N');
  if (targets === 'connect') {
    cmd.option(
      '-c, --connect <addr>',
      'where to connect for each stream (a host name is resolved per connection), or exec:COMMAND (stdin/stdout of a fresh COMMAND per stream), or handoff:/path.sock (pass the connection to that receiver); repeat to balance over several (ADDR or ADDR,weight=W)',
      collect,
    );
  } else {
    cmd.option('-b, --backend <addr>', 'a backend (host:port, [v6]:port or /path.sock, optionally ADDR,weight=W); repeat for several', collect);
  }
  return addOperateOptions(cmd)
    .option('--discover <url>', `balance over the backends registered in etcd: etcd://HOST:PORT[,HOST:PORT]/PREFIX, etcds:// for TLS (instead of --${targets})`)
    .addOption(new Option('--strategy <name>', `${targets === 'backend' ? 'how new streams are spread over the backends' : 'with several --connect or --discover: how new streams are spread'}`).choices(STRATEGIES).default('round-robin'))
    .option('--eject-after <n>', 'balancing: connect failures in a row that take a backend out of rotation (back-off 1s, doubling to 30s)', parsePositiveInt, DEFAULTS.ejectAfter)
    .addOption(
      new Option('--health-interval <duration>', `balancing: TCP-connect every backend this often (at least ${formatDurationMs(MIN_HEALTH_INTERVAL_MS)}); failing ones get no new streams`).argParser(
        durationAtLeast(MIN_HEALTH_INTERVAL_MS),
      ),
    )
    .option('--listen-netns <ns>', 'create the listening socket inside this network namespace: NAME (ip netns), /path, or pid:N')
    .option('--connect-netns <ns>', 'open outgoing connections from inside this network namespace (address must be an IP or a path)')
    .option('-n, --max-connections <n>', 'streams served at once; more wait, unread, until one closes', parsePositiveInt, DEFAULTS.maxConnections)
    .addOption(durationOption('--connect-timeout <duration>', 'time allowed to connect onward', DEFAULTS.connectTimeoutMs, parseTimeout))
    .option(
      '--no-keepalive',
      `disable TCP keep-alive (on by default: first probe after ${DEFAULTS.keepAliveIdleSeconds}-${DEFAULTS.keepAliveIdleSeconds + DEFAULTS.keepAliveSpreadSeconds}s idle, ` +
        `then ${DEFAULTS.keepAliveCount} probes ${DEFAULTS.keepAliveIntervalSeconds}s apart)`,
    )
    .addOption(durationOption('--drain-timeout <duration>', 'on SIGTERM/SIGINT, how long open streams may take to finish', DEFAULTS.drainTimeoutMs))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'json, or pretty for humans (default: pretty on a terminal, else json)').choices(['json', 'pretty']));
}

function addKeyOptions(cmd: Command, repeatable: boolean): Command {
  return cmd
    .requiredOption(
      '-k, --key <file>',
      repeatable ? 'pre-shared key file; repeat to accept several keys during a rotation (the first is primary)' : 'pre-shared key file (made by jumper-keygen)',
      collect,
    )
    .addOption(durationOption('--handshake-timeout <duration>', 'time allowed for the peer to prove the key', DEFAULTS.handshakeTimeoutMs, parseTimeout))
    .option('--allow-insecure-key', 'accept a key file that group or others can read')
    .addOption(new Option('--protocol <name>', 'wire protocol: jumper (Noise), or spiped to talk to spiped 1.6').choices(['jumper', 'spiped']).default('jumper'))
    .option('--no-pfs', 'spiped protocol: skip Diffie-Hellman, no forward secrecy (spiped -f)')
    .option('--require-pfs', "spiped protocol: refuse peers that skip Diffie-Hellman (spiped -g)");
}

/** --start, --start-timeout, --idle-stop: on server and forward. */
function addStartOptions(cmd: Command): Command {
  return cmd
    .option('--start <command>', 'start the provider with this shell command on the first connection that needs it (one --connect address; not with forward --connect handoff:)')
    .addOption(durationOption('--start-timeout <duration>', 'with --start: how long connections wait for the provider to accept', DEFAULTS.startTimeoutMs, parseTimeout))
    .addOption(new Option('--idle-stop <duration>', 'with --start: stop the provider after this long without open streams').argParser(parseDuration));
}

function startOptions(flags: StartFlags, cmd: Command): Pick<CommonOptions, 'start'> {
  refuseUnless(cmd, ['startTimeout', 'idleStop'], Boolean(flags.start), '--start');
  if (!flags.start) return {};
  const start: NonNullable<CommonOptions['start']> = { command: flags.start, startTimeoutMs: flags.startTimeout };
  if (flags.idleStop !== undefined) start.idleStopMs = flags.idleStop;
  return { start };
}

function protocolLabel(p: { protocol: TunnelProtocol; pfs: PfsMode }): string {
  return p.protocol === 'jumper' ? 'jumper/1' : `spiped/1.6${p.pfs === 'off' ? ' (no PFS)' : p.pfs === 'require' ? ' (PFS required)' : ''}`;
}

/** Which handshake primitives the jumper protocol runs on here (start-up line): native, native-openssl or node. */
function handshakeCrypto(p: { protocol: TunnelProtocol }): string | undefined {
  return p.protocol === 'jumper' ? handshakePrimitives().name : undefined;
}

/** --register and friends: on every role (a registered client or forward is a backend like a server). */
function addRegisterOptions(cmd: Command): Command {
  return addEtcdAccessOptions(cmd
    .option('--register <url>', 'register in etcd while listening: etcd://HOST:PORT[,HOST:PORT]/PREFIX, etcds:// for TLS (needs --advertise)')
    .option('--advertise <addr>', 'with --register: the address balancers and clients should connect to (host:port)')
    .option('--weight <n>', 'with --register: relative share of streams (1-1000)', parsePositiveInt)
    .addOption(
      durationOption('--lease-ttl <duration>', `with --register: etcd lease TTL (at least ${formatDurationMs(MIN_LEASE_TTL_MS)}); a crashed jumper disappears after it`, DEFAULTS.leaseTtlSeconds * 1000, durationAtLeast(MIN_LEASE_TTL_MS)),
    )
    .addOption(durationOption('--deregister-delay <duration>', 'with --register: on SIGTERM/SIGINT, keep accepting this long after deregistering', DEFAULTS.deregisterDelayMs)));
}

/** --register and friends, and the etcd credentials --register and --discover share. */
function registerOptions(flags: RegisterFlags & EtcdFlags, cmd: Command): Pick<CommonOptions, 'register' | 'etcd'> {
  refuseUnless(cmd, ['advertise', 'weight', 'leaseTtl', 'deregisterDelay'], Boolean(flags.register), '--register');
  const etcd = etcdAccessOption(flags, cmd);
  if (!flags.register) return etcd;
  if (!flags.advertise) throw new InvalidArgumentError('--register needs --advertise HOST:PORT (the address others connect to)');
  const register: NonNullable<CommonOptions['register']> = {
    url: flags.register,
    advertise: flags.advertise,
    ttlSeconds: Math.round(flags.leaseTtl / 1000),
    deregisterDelayMs: flags.deregisterDelay,
  };
  if (flags.weight !== undefined) register.weight = flags.weight;
  return { register, ...etcd };
}

function commonOptions(flags: CommonFlags, logger: CommonOptions['logger'], cmd: Command): CommonOptions {
  const connect = flags.connect;
  // Balancing options need something to balance over (a balancer keeps a pool even for one backend).
  const balancing = cmd.name() === 'balance' || flags.discover !== undefined || (connect?.length ?? 0) > 1;
  refuseUnless(cmd, ['strategy', 'ejectAfter', 'healthInterval'], balancing, 'several --connect or --discover');
  // exec: starts a command and handoff: passes the socket on: neither dials, so no timeout would apply.
  refuseUnless(cmd, ['connectTimeout'], connect?.every(isDialledTarget) ?? true, 'a --connect address that is dialled (not exec: or handoff:)');
  // exec: streams are piped in JS, and a forward's handoff: passes the socket itself: neither runs on the
  // native threads. (A server's or client's handoff: target is a socket pair the native pump serves.)
  const runsNatively = (target: string) => !target.startsWith(EXEC_PREFIX) && (cmd.name() !== 'forward' || isDialledTarget(target));
  refuseUnless(cmd, ['busyPoll'], connect?.some(runsNatively) ?? true, "a --connect target served by the native data path (not exec:, nor a forward's handoff:)");
  const options: CommonOptions = {
    listen: flags.listen,
    connect: connect === undefined ? undefined : connect.length === 1 ? connect[0]! : connect,
    balance: { strategy: flags.strategy, ejectAfter: flags.ejectAfter },
    maxConnections: flags.maxConnections,
    connectTimeoutMs: flags.connectTimeout,
    keepAlive: flags.keepalive,
  };
  if (logger) options.logger = logger;
  if (flags.listenNetns) options.listenNetns = flags.listenNetns;
  if (flags.connectNetns) options.connectNetns = flags.connectNetns;
  if (flags.discover) options.discover = flags.discover;
  if (flags.healthInterval !== undefined) options.balance!.healthIntervalMs = flags.healthInterval;
  Object.assign(options, operateOptions(flags));
  return options;
}

async function readKeys(flags: KeyFlags): Promise<TunnelKey[]> {
  return Promise.all(flags.key.map((file) => readKeyFile(file, { allowInsecurePermissions: flags.allowInsecureKey ?? false })));
}

const EXAMPLES = `
Examples:
  # machine B, in front of a database on its loopback
  jumper-keygen /etc/jumper/db.key
  jumper server --listen 0.0.0.0:8025 --connect 127.0.0.1:5432 --key /etc/jumper/db.key

  # machine A: the app connects to 127.0.0.1:5432 as if the database were local
  jumper client --listen 127.0.0.1:5432 --connect machine-b:8025 --key /etc/jumper/db.key

  # a container with only loopback reaches a host-loopback service (no iptables)
  jumper forward --listen-netns pid:4242 --listen 127.0.0.1:6379 --connect 127.0.0.1:6379

  # many links from one file, with Prometheus metrics; SIGHUP reloads the file
  jumper run --config /etc/jumper/jumper.yaml --admin 127.0.0.1:9100 --user jumper
  jumper status --admin 127.0.0.1:9100

Signals: SIGTERM/SIGINT stop accepting and drain open streams (--drain-timeout), then exit 0
(during start-up: once started, so an etcd key and a socket file go too; a second one exits 1 at once);
SIGHUP re-reads the key file(s): new streams use the new key, open streams keep theirs.
Exit status: 0 after a clean stop, 1 runtime failure (e.g. the address is in use), 2 usage
(a bad or contradictory option, a bad key file).
Docs: docs/ in the jumper repository (PROTOCOL, namespaces, systemd, activation, spiped, discovery, operations, reliability, performance).`;

function buildProgram(): Command {
  const program = new Command(PROGRAM)
    .description('software defined localhost: encrypted, namespace-crossing TCP/Unix jumpers')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    // Commander's own usage errors (unknown option, bad value) exit 2 like ours, not 1 (a runtime failure);
    // subcommands created below inherit this.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE))
    .addHelpText('after', EXAMPLES);

  const server = program
    .command('server')
    .description('accept encrypted streams, authenticate them, and forward the plaintext to the provider')
    .addHelpText('after', '\nExample:\n  jumper server --listen 0.0.0.0:8025 --connect 127.0.0.1:5432 --key db.key');
  server.option(
    '--max-handshakes <n>',
    'jumper protocol: connections still proving the key (each until --handshake-timeout); a stream counts against --max-connections only once authenticated, so stalled handshakes cannot starve clients',
    parsePositiveInt,
    DEFAULTS.maxHandshakes,
  );
  addProxyProtocolOption(addRegisterOptions(addStartOptions(addKeyOptions(addCommonOptions(server), true)))).action(async (flags: CommonFlags & KeyFlags & StartFlags & RegisterFlags & { proxyProtocol?: string; maxHandshakes: number }, cmd: Command) => {
    const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
    const proto = protocolOptions(flags);
    // spiped's handshake is admitted as a stream at once (its slot is a --max-connections slot).
    refuseUnless(cmd, ['maxHandshakes'], proto.protocol === 'jumper', 'the jumper protocol (a spiped handshake holds a --max-connections slot)');
    refuseUnless(cmd, ['busyPoll'], proto.protocol === 'jumper', 'the jumper protocol (spiped streams run on the JS data path)');
    const options = {
      ...commonOptions(flags, logger, cmd),
      ...startOptions(flags, cmd),
      ...registerOptions(flags, cmd),
    };
    const keys = await readKeys(flags);
    const jumper = createServer({
      ...options,
      ...proxyProtocolOption(flags),
      ...proto,
      key: keys,
      handshakeTimeoutMs: flags.handshakeTimeout,
      maxHandshakes: flags.maxHandshakes,
    });
    await runRole({
      jumper,
      logger,
      drainTimeoutMs: flags.drainTimeout, operate: flags,
      startFields: { connect: jumper.connectDescription, keys: keys.map((k) => k.fingerprint), protocol: protocolLabel(proto), crypto: handshakeCrypto(proto), register: flags.register },
      reloadKey: async () => {
        const fresh = await readKeys(flags);
        jumper.setKey(fresh);
        return { keys: fresh.map((k) => k.fingerprint) };
      },
    });
  });

  const client = program
    .command('client')
    .description('accept plain streams from the consumer, encrypt them, and carry them to a server jumper')
    .addHelpText('after', '\nExample:\n  jumper client --listen 127.0.0.1:5432 --connect db-host:8025 --key db.key');
  addRegisterOptions(addKeyOptions(addCommonOptions(client), false))
    .option(
      '--preconnect <n|auto>',
      'keep n wires to the server dialled and handshaken ahead of demand, so a new stream skips the handshake round trip; refilled while streams arrive. auto: one wire, only while streams come in a row (each within --preconnect-idle of the last); 0 = off',
      parsePreconnect,
      DEFAULTS.preconnect,
    )
    .addOption(
      durationOption('--preconnect-idle <duration>', "retire a preconnected wire after this long unused, and (auto) the gap within which streams count as in a row; keep it below the server's --handshake-timeout", DEFAULTS.preconnectIdleMs, parseTimeout),
    )
    .option(
      '--max-handshakes <n>',
      "streams dialling and handshaking with the server at once; more wait their turn, unread and untimed, so a burst of streams does not overflow the server's accept queue and time out",
      parsePositiveInt,
      DEFAULTS.clientMaxHandshakes,
    );
  client.action(async (flags: CommonFlags & KeyFlags & RegisterFlags & { preconnect: PreconnectSetting; preconnectIdle: number; maxHandshakes: number }, cmd: Command) => {
    if (flags.key.length !== 1) throw new InvalidArgumentError('a client jumper takes exactly one --key');
    const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
    const proto = protocolOptions(flags);
    refuseUnless(cmd, ['preconnectIdle'], proto.protocol === 'jumper' && flags.preconnect !== 0, '--preconnect (not 0) and the jumper protocol');
    refuseUnless(cmd, ['busyPoll'], proto.protocol === 'jumper', 'the jumper protocol (spiped streams run on the JS data path)');
    const options = { ...commonOptions(flags, logger, cmd), ...registerOptions(flags, cmd) };
    const [key] = await readKeys(flags);
    const jumper = createClient({
      ...options,
      ...proto,
      key: key!,
      handshakeTimeoutMs: flags.handshakeTimeout,
      preconnect: flags.preconnect,
      preconnectIdleMs: flags.preconnectIdle,
      maxHandshakes: flags.maxHandshakes,
    });
    await runRole({
      jumper,
      logger,
      drainTimeoutMs: flags.drainTimeout, operate: flags,
      startFields: { connect: jumper.connectDescription, key: key!.fingerprint, protocol: protocolLabel(proto), crypto: handshakeCrypto(proto), preconnect: jumper.preconnectSetting || undefined, strategy: jumper.backends().length > 0 || flags.discover ? flags.strategy : undefined, register: flags.register },
      reloadKey: async () => {
        const [fresh] = await readKeys(flags);
        jumper.setKey(fresh!);
        return { key: fresh!.fingerprint };
      },
    });
  });

  const forward = program
    .command('forward')
    .description('plain (unencrypted) forwarding, typically from one network namespace into another')
    .addHelpText(
      'after',
      '\nExamples:\n  jumper forward --listen-netns mycontainer --listen 127.0.0.1:80 --connect 127.0.0.1:8080\n  jumper forward --listen 127.0.0.1:9000 --connect-netns pid:4242 --connect 127.0.0.1:9000',
    );
  addProxyProtocolOption(addRegisterOptions(addStartOptions(addCommonOptions(forward)))).action(async (flags: CommonFlags & StartFlags & RegisterFlags & { proxyProtocol?: string }, cmd: Command) => {
    const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
    const jumper = createForward({ ...commonOptions(flags, logger, cmd), ...startOptions(flags, cmd), ...registerOptions(flags, cmd), ...proxyProtocolOption(flags) });
    await runRole({ jumper, logger, drainTimeoutMs: flags.drainTimeout, operate: flags, startFields: { connect: jumper.connectDescription, register: flags.register } });
  });

  const balance = program
    .command('balance')
    .description('spread streams over several backends (server jumpers) without any key: encrypted streams pass through untouched')
    .addHelpText(
      'after',
      `
Examples:
  jumper balance --listen 0.0.0.0:8025 --backend 10.0.0.5:8025 --backend 10.0.0.6:8025,weight=2
  jumper balance --listen 0.0.0.0:8025 --discover etcd://127.0.0.1:2379/jumper/db --strategy least-connections
Servers register with: jumper server ... --register etcd://127.0.0.1:2379/jumper/db --advertise 10.0.0.5:8025
A backend that refuses or times out is skipped before any byte is forwarded; see docs/discovery.md.`,
    );
  addRegisterOptions(addCommonOptions(balance, 'backend')).action(async (flags: CommonFlags & RegisterFlags & { backend?: string[] }, cmd: Command) => {
    const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
    if (flags.backend === undefined && !flags.discover) throw new InvalidArgumentError('jumper balance needs --backend ADDR (repeatable) or --discover etcd://HOST:PORT/PREFIX');
    if (flags.backend !== undefined && flags.discover) throw new InvalidArgumentError('give either --backend or --discover, not both');
    const { connect: _none, ...common } = commonOptions(flags, logger, cmd);
    const options: Parameters<typeof createBalancer>[0] = { ...common, ...registerOptions(flags, cmd) };
    if (flags.backend !== undefined) options.backends = flags.backend;
    const jumper = createBalancer(options);
    await runRole({
      jumper,
      logger,
      drainTimeoutMs: flags.drainTimeout, operate: flags,
      startFields: { backends: jumper.connectDescription, strategy: flags.strategy, register: flags.register },
    });
  });

  addRunCommand(program);
  addStatusCommand(program);
  addSpipedCommand(program);
  addPipeCommand(program);
  addAcceptCommand(program);
  return program;
}

// Before anything spawns: exec: commands and --start providers must not inherit $NOTIFY_SOCKET.
claimSystemdNotify();
dropIpServerNameWarning();
buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => die(PROGRAM, err));
