/**
 * The systems under test and how to start each one in front of the provider.
 *
 * A system is a chain of child processes whose entry port the measuring
 * client connects to, ending at the provider port:
 *
 *   direct                  client -> provider                    (baseline)
 *   jumper                  client -> jumper client -> jumper server -> provider
 *   spiped                  client -> spiped -e -> spiped -d -> provider
 *   stunnel                 client -> stunnel (client) =TLS1.3=> stunnel (server) -> provider
 *   stunnel-chacha          same, TLS_CHACHA20_POLY1305_SHA256 forced (jumper's cipher)
 *   jumper-cold             the same pair, client with --preconnect 0 (every stream handshakes)
 *   jumper-busy-poll        the same pair, both with --busy-poll 50 (reactor threads poll 50 µs before sleeping)
 *   jumper-spiped           the same pair with --protocol spiped (wire-compatible with spiped)
 *   jumper-forward          client -> jumper forward -> provider   (plain)
 *   jumper-handoff          client -> jumper forward --connect handoff: -> the provider's own copy,
 *                           started under the LD_PRELOAD shim (the socket is passed, not relayed)
 *   socat                   client -> socat fork -> provider       (plain)
 *   systemd-socket-proxyd   client -> systemd-socket-proxyd -> provider (plain)
 *
 * Every system is started fresh, waited on until its ports accept and one
 * echo has gone through the whole chain, and stopped (SIGTERM, then SIGKILL
 * of its process group) afterwards, also on error.
 *
 * Settings differing from a rival's defaults are only those needed to hold
 * the idle-connection load (connection limits, listen backlog); each is noted
 * in `notes` and ends up in the JSON results.
 */

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fdLimit } from './fd-limit.js';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  LOOPBACK,
  PROBE_TIMEOUT_MS,
  READY_ECHO_TIMEOUT_MS,
  STARTUP_TIMEOUT_MS,
} from './config.js';
import { ManagedProcess, runCommand } from './processes.js';
import { startProvider } from './providers.js';
import { echoHandshake, freePort, sleep, waitForPort } from './net.js';

export type SystemGroup = 'baseline' | 'encrypted' | 'forward';

export interface SystemContext {
  /** Repository root (where dist/ lives). */
  readonly repoRoot: string;
  /** Per-run scratch directory (keys, certificates, configs). */
  readonly workDir: string;
  readonly providerPort: number;
  /** Idle connections the system must be able to hold at once. */
  readonly maxConnections: number;
  /** Run jumper from TypeScript sources instead of dist/. */
  readonly jumperFromSource: boolean;
}

export interface RunningSystem {
  readonly name: string;
  /** Port the measuring client connects to. */
  readonly entryPort: number;
  /** Root pids of the proxy processes (empty for direct). */
  readonly pids: readonly number[];
  /** Other processes on the data path that the bench started for this system (hand-off's provider copy). */
  readonly helperPids?: readonly number[];
  /** The last lines the proxy processes wrote (their logs name why a connection failed). */
  output?(): string;
  stop(): Promise<void>;
}

export interface SystemSpec {
  readonly name: string;
  readonly group: SystemGroup;
  readonly description: string;
  /** Null if the system can run here, else the reason it is skipped. */
  detect(ctx: SystemContext): Promise<string | null>;
  start(ctx: SystemContext): Promise<RunningSystem>;
  /** Human-readable notes on non-default settings. */
  readonly notes?: string;
}

const addr = (port: number): string => `${LOOPBACK}:${port}`;
const spipedAddr = (port: number): string => `[${LOOPBACK}]:${port}`;

async function which(binary: string): Promise<string | null> {
  const r = await runCommand('sh', ['-c', `command -v ${binary}`], PROBE_TIMEOUT_MS);
  const found = r.stdout.trim();
  return r.code === 0 && found !== '' ? found : null;
}

interface ChainStep {
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Port this process listens on. */
  readonly port: number;
  readonly cwd?: string;
}

/**
 * Start the steps in order (each one waited on until its port accepts), then
 * prove the chain end to end with an echo through the entry port.
 */
async function startChain(name: string, steps: readonly ChainStep[]): Promise<RunningSystem> {
  const procs: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  try {
    for (const step of steps) {
      const proc = new ManagedProcess(`${name}/${step.label}`, step.command, step.args, step.cwd ? { cwd: step.cwd } : {});
      procs.push(proc);
      await waitForPort(step.port, STARTUP_TIMEOUT_MS, () =>
        proc.hasExited ? `${proc.label} ${proc.describeExit()}: ${proc.output()}` : null,
      );
    }
    const entry = steps[steps.length - 1];
    if (entry === undefined) throw new Error(`${name}: empty chain`);
    await readyEcho(entry.port, procs);
    const output = (): string => procs.map((p) => `${p.label}: ${p.output()}`).join(' || ');
    return { name, entryPort: entry.port, pids: procs.map((p) => p.pid), output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Retry one end-to-end echo until it works (a server side may still be initialising). */
async function readyEcho(port: number, procs: readonly ManagedProcess[]): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.hasExited);
    if (dead) throw new Error(`${dead.label} ${dead.describeExit()}: ${dead.output()}`);
    try {
      const s = await echoHandshake(port, READY_ECHO_TIMEOUT_MS);
      s.destroy();
      return;
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw new Error(`chain never echoed: ${String(last)} ${procs.map((p) => p.output()).join(' ')}`);
}

/** One 32-byte binary key per run, usable by both jumper and spiped. */
export function ensureKeyFile(workDir: string): string {
  const file = path.join(workDir, 'bench.key');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32), { mode: 0o600 });
  return file;
}

// ---------------------------------------------------------------- direct

const direct: SystemSpec = {
  name: 'direct',
  group: 'baseline',
  description: 'client talks to the provider, no proxy',
  detect: async () => null,
  start: async (ctx) => ({ name: 'direct', entryPort: ctx.providerPort, pids: [], stop: async () => undefined }),
};

// ---------------------------------------------------------------- jumper

/** The node flags on the CLI's shebang line, so the bench runs jumper as the installed command does. */
function shebangFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node(.*)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}

/** Extra node flags for the jumper processes (e.g. --cpu-prof), from JUMPER_BENCH_NODE_ARGS. */
const benchNodeArgs = (process.env['JUMPER_BENCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');

function jumperCommand(ctx: SystemContext): { command: string; args: string[] } | null {
  const dist = path.join(ctx.repoRoot, 'dist', 'cli', 'jumper.js');
  const src = path.join(ctx.repoRoot, 'src', 'cli', 'jumper.ts');
  if (ctx.jumperFromSource) {
    return existsSync(src) ? { command: process.execPath, args: [...benchNodeArgs, ...shebangFlags(src), '--import', 'tsx', src] } : null;
  }
  return existsSync(dist) ? { command: process.execPath, args: [...benchNodeArgs, ...shebangFlags(dist), dist] } : null;
}

async function detectJumper(ctx: SystemContext, subcommand: string, needsFlag?: string): Promise<string | null> {
  const cmd = jumperCommand(ctx);
  if (cmd === null) {
    return ctx.jumperFromSource
      ? 'src/cli/jumper.ts not found'
      : 'dist/cli/jumper.js not found (run `npm run build`)';
  }
  const r = await runCommand(cmd.command, [...cmd.args, subcommand, '--help'], PROBE_TIMEOUT_MS);
  if (r.code !== 0) {
    const why = (r.error ?? r.stderr.trim().split('\n')[0] ?? '').slice(0, 160);
    return `\`jumper ${subcommand} --help\` failed (exit ${r.code}): ${why}`;
  }
  if (needsFlag !== undefined && !r.stdout.includes(needsFlag)) return `this jumper has no ${needsFlag} (an older build?)`;
  return null;
}

/**
 * jumper admits 1000 streams at once by default: the idle and burst figures
 * need more. But a served stream costs a proxy two fds and a waiting one
 * costs one, so with N connections at once the fds in use are
 * active + N: the limit keeps that under the fd limit (this VM's hard limit
 * is 20000), and the rest of a burst waits its turn instead of hitting EMFILE.
 */
function jumperLimits(ctx: SystemContext): string[] {
  const fitsFds = fdLimit().soft - FD_MARGIN - ctx.maxConnections;
  return ['--max-connections', String(Math.max(1, Math.min(ctx.maxConnections + 64, fitsFds)))];
}

/** Descriptors a jumper process needs besides its streams (listeners, libuv, stdio, ...). */
const FD_MARGIN = 256;

/** A jumper client + server pair; `protocolArgs` go to both (the first flag must be in --help), `clientArgs` to the client only. */
function jumperPair(name: string, description: string, protocolArgs: string[], clientArgs: string[] = [], notes?: string): SystemSpec {
  return {
    name,
    group: 'encrypted',
    description,
    ...(notes === undefined ? {} : { notes }),
    detect: (ctx) => detectJumper(ctx, 'server', protocolArgs[0]),
    start: async (ctx) => {
      const cmd = jumperCommand(ctx);
      if (cmd === null) throw new Error('jumper not found');
      const key = ensureKeyFile(ctx.workDir);
      const serverPort = await freePort();
      const clientPort = await freePort();
      const common = ['--key', key, '--log-level', 'warn', ...jumperLimits(ctx), ...protocolArgs];
      return startChain(name, [
        {
          label: 'server',
          command: cmd.command,
          args: [...cmd.args, 'server', '--listen', addr(serverPort), '--connect', addr(ctx.providerPort), ...common],
          port: serverPort,
          cwd: ctx.repoRoot,
        },
        {
          label: 'client',
          command: cmd.command,
          args: [...cmd.args, 'client', '--listen', addr(clientPort), '--connect', addr(serverPort), ...common, ...clientArgs],
          port: clientPort,
          cwd: ctx.repoRoot,
        },
      ]);
    },
  };
}

const jumper = jumperPair('jumper', 'jumper client + jumper server, native protocol', []);
// The default client keeps a wire ahead of demand while streams come in a row
// (--preconnect auto); this row shows the path where every stream handshakes.
const jumperCold = jumperPair(
  'jumper-cold',
  'the jumper pair with preconnect off (--preconnect 0): every stream dials and handshakes its own wire',
  [],
  ['--preconnect', '0'],
);
// Latency tuning an operator may choose: the reactor threads poll before they
// sleep, so the next record does not wait for a halted vCPU to be woken.
const jumperBusyPoll = jumperPair(
  'jumper-busy-poll',
  'the jumper pair with --busy-poll 50 on both: native data-path threads poll 50 µs after each wake-up before sleeping again',
  ['--busy-poll', '50'],
  [],
  '--busy-poll 50 on both jumpers (off by default); without the native addon it is logged as ignored and the row is the plain pair',
);
const jumperSpiped = jumperPair('jumper-spiped', 'jumper client + jumper server speaking the spiped protocol (with DH)', ['--protocol', 'spiped']);

const jumperForward: SystemSpec = {
  name: 'jumper-forward',
  group: 'forward',
  description: 'jumper forward, plain TCP forwarder',
  detect: (ctx) => detectJumper(ctx, 'forward'),
  start: async (ctx) => {
    const cmd = jumperCommand(ctx);
    if (cmd === null) throw new Error('jumper not found');
    const port = await freePort();
    return startChain('jumper-forward', [
      {
        label: 'forward',
        command: cmd.command,
        args: [...cmd.args, 'forward', '--listen', addr(port), '--connect', addr(ctx.providerPort), '--log-level', 'warn', ...jumperLimits(ctx)],
        port,
        cwd: ctx.repoRoot,
      },
    ]);
  },
};

/** The LD_PRELOAD hand-off shim (native/preload/), built at npm install. */
function preloadShim(ctx: SystemContext): string {
  return path.join(ctx.repoRoot, 'native', 'preload', 'libjumper_preload.so');
}

/**
 * Hand-off: jumper forward passes each accepted socket (SCM_RIGHTS) to a
 * provider of its own, the same provider code started under the LD_PRELOAD
 * shim, whose accept() then returns the client's TCP socket. The jumper is
 * out of the data path, so this row should match `direct`; its CPU and
 * memory columns are the forwarder's alone, as in every row.
 */
const jumperHandoff: SystemSpec = {
  name: 'jumper-handoff',
  group: 'forward',
  description: 'jumper forward --connect handoff: (SCM_RIGHTS) to a provider under the LD_PRELOAD shim: out of the data path',
  detect: async (ctx) => (existsSync(preloadShim(ctx)) ? detectJumper(ctx, 'forward') : 'native/preload/libjumper_preload.so not built (npm install)'),
  start: async (ctx) => {
    const cmd = jumperCommand(ctx);
    if (cmd === null) throw new Error('jumper not found');
    const socketPath = path.join(ctx.workDir, 'handoff.sock');
    // The shim remembers this port instead of binding it; nothing listens on it.
    const shimPort = await freePort();
    const provider = await startProvider({
      port: shimPort,
      label: 'jumper-handoff/provider',
      env: { ...process.env, LD_PRELOAD: preloadShim(ctx), JUMPER_PRELOAD_PORT: String(shimPort), JUMPER_PRELOAD_SOCKET: socketPath },
    });
    try {
      const port = await freePort();
      const chain = await startChain('jumper-handoff', [
        {
          label: 'forward',
          command: cmd.command,
          args: [...cmd.args, 'forward', '--listen', addr(port), '--connect', `handoff:${socketPath}`, '--log-level', 'warn', ...jumperLimits(ctx)],
          port,
          cwd: ctx.repoRoot,
        },
      ]);
      return {
        ...chain,
        helperPids: [provider.process.pid],
        stop: async () => {
          await chain.stop();
          await provider.stop();
        },
      };
    } catch (err) {
      await provider.stop();
      throw err;
    }
  },
};

// ---------------------------------------------------------------- spiped

const spiped: SystemSpec = {
  name: 'spiped',
  group: 'encrypted',
  description: 'spiped -e + spiped -d (default handshake, with PFS)',
  notes: '-n 0 (no connection limit; the default 100 would cap the idle-connection test)',
  detect: async () => ((await which('spiped')) ? null : 'spiped not installed (apt-get install spiped)'),
  start: async (ctx) => {
    const key = ensureKeyFile(ctx.workDir);
    const serverPort = await freePort();
    const clientPort = await freePort();
    return startChain('spiped', [
      {
        label: 'decrypt',
        command: 'spiped',
        args: ['-d', '-s', spipedAddr(serverPort), '-t', spipedAddr(ctx.providerPort), '-k', key, '-F', '-n', '0'],
        port: serverPort,
      },
      {
        label: 'encrypt',
        command: 'spiped',
        args: ['-e', '-s', spipedAddr(clientPort), '-t', spipedAddr(serverPort), '-k', key, '-F', '-n', '0'],
        port: clientPort,
      },
    ]);
  },
};

// ---------------------------------------------------------------- stunnel

let stunnelBinary: string | null | undefined;

async function findStunnel(): Promise<string | null> {
  if (stunnelBinary === undefined) stunnelBinary = (await which('stunnel4')) ?? (await which('stunnel'));
  return stunnelBinary;
}

async function ensureCertificate(workDir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(workDir, 'stunnel-cert.pem');
  const key = path.join(workDir, 'stunnel-key.pem');
  if (existsSync(cert) && existsSync(key)) return { cert, key };
  const r = await runCommand(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${LOOPBACK}`,
      '-addext', `subjectAltName=IP:${LOOPBACK}`,
    ],
    PROBE_TIMEOUT_MS,
  );
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.error ?? r.stderr}`);
  return { cert, key };
}

function stunnelSpec(name: string, ciphersuites: string | null): SystemSpec {
  const cipherLine = ciphersuites === null ? '' : `ciphersuites = ${ciphersuites}\n`;
  return {
    name,
    group: 'encrypted',
    description:
      ciphersuites === null
        ? 'stunnel client -> stunnel server, TLS 1.3 defaults (AES-256-GCM), P-256 cert verified'
        : `stunnel pair, TLS 1.3 forced to ${ciphersuites}`,
    notes: 'self-signed P-256 certificate verified by the client (verifyChain + checkIP); session resumption on (default)',
    detect: async () => {
      if ((await findStunnel()) === null) return 'stunnel not installed (apt-get install stunnel4)';
      if ((await which('openssl')) === null) return 'openssl not installed (needed for the certificate)';
      return null;
    },
    start: async (ctx) => {
      const bin = await findStunnel();
      if (bin === null) throw new Error('stunnel not found');
      const { cert, key } = await ensureCertificate(ctx.workDir);
      const serverPort = await freePort();
      const clientPort = await freePort();
      const global = 'foreground = yes\npid =\ndebug = 4\n';
      const serverConf = path.join(ctx.workDir, `${name}-server.conf`);
      const clientConf = path.join(ctx.workDir, `${name}-client.conf`);
      writeFileSync(
        serverConf,
        `${global}[srv]\naccept = ${addr(serverPort)}\nconnect = ${addr(ctx.providerPort)}\n` +
          `cert = ${cert}\nkey = ${key}\nsslVersionMin = TLSv1.3\n${cipherLine}`,
      );
      writeFileSync(
        clientConf,
        `${global}[cli]\nclient = yes\naccept = ${addr(clientPort)}\nconnect = ${addr(serverPort)}\n` +
          `verifyChain = yes\nCAfile = ${cert}\ncheckIP = ${LOOPBACK}\nsslVersionMin = TLSv1.3\n${cipherLine}`,
      );
      return startChain(name, [
        { label: 'server', command: bin, args: [serverConf], port: serverPort },
        { label: 'client', command: bin, args: [clientConf], port: clientPort },
      ]);
    },
  };
}

// ---------------------------------------------------------------- plain forwarders

const SOCAT_BACKLOG = 1024;

const socat: SystemSpec = {
  name: 'socat',
  group: 'forward',
  description: 'socat TCP-LISTEN fork (one process per connection)',
  notes: `bind=127.0.0.1, backlog=${SOCAT_BACKLOG} (the default of 5 drops SYNs while opening idle connections)`,
  detect: async () => ((await which('socat')) ? null : 'socat not installed (apt-get install socat)'),
  start: async (ctx) => {
    const port = await freePort();
    return startChain('socat', [
      {
        label: 'socat',
        command: 'socat',
        args: [
          `TCP-LISTEN:${port},bind=${LOOPBACK},fork,reuseaddr,backlog=${SOCAT_BACKLOG}`,
          `TCP:${addr(ctx.providerPort)}`,
        ],
        port,
      },
    ]);
  },
};

const PROXYD_CANDIDATES = ['/lib/systemd/systemd-socket-proxyd', '/usr/lib/systemd/systemd-socket-proxyd'];

const socketProxyd: SystemSpec = {
  name: 'systemd-socket-proxyd',
  group: 'forward',
  description: 'systemd-socket-proxyd under systemd-socket-activate',
  notes: '--connections-max raised above the idle-connection count (default 256)',
  detect: async () => {
    if ((await which('systemd-socket-activate')) === null) return 'systemd-socket-activate not found';
    if (!PROXYD_CANDIDATES.some((p) => existsSync(p))) return 'systemd-socket-proxyd not found';
    return null;
  },
  start: async (ctx) => {
    const proxyd = PROXYD_CANDIDATES.find((p) => existsSync(p));
    if (proxyd === undefined) throw new Error('systemd-socket-proxyd not found');
    const port = await freePort();
    // systemd-socket-activate listens, then execs the proxy (same pid) on the
    // first connection, which the readiness probe provides.
    return startChain('systemd-socket-proxyd', [
      {
        label: 'proxyd',
        command: 'systemd-socket-activate',
        args: ['-l', addr(port), proxyd, `--connections-max=${ctx.maxConnections + 64}`, addr(ctx.providerPort)],
        port,
      },
    ]);
  },
};

/** All systems in table order. */
export const SYSTEMS: readonly SystemSpec[] = [
  direct,
  jumper,
  jumperCold,
  jumperBusyPoll,
  jumperSpiped,
  spiped,
  stunnelSpec('stunnel', null),
  stunnelSpec('stunnel-chacha', 'TLS_CHACHA20_POLY1305_SHA256'),
  jumperForward,
  jumperHandoff,
  socat,
  socketProxyd,
];
