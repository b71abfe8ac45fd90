/**
 * `jumper spiped`: spiped's own flag spelling, so a service file that runs
 * spiped keeps working with the binary swapped:
 *
 *   jumper spiped -e|-d -s SRC -t TGT -k KEY [-f|-g] [-j] [-n N] [-o T] [-F] [-p PIDFILE]
 *
 * -e is a client jumper and -d a server jumper, both speaking the spiped
 * protocol. jumper never daemonizes: it always runs in the foreground, as
 * with -F (use systemd or another supervisor).
 */
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { MAX_DURATION_MS } from '../options.js';
import { deriveKey, readKeyFile, type TunnelKey } from '../keys/key-file.js';
import { wipe } from '../crypto/sodium.js';
import { createClient } from '../roles/client.js';
import { createServer } from '../roles/server.js';
import type { Jumper } from '../roles/jumper.js';
import { createLogger, LOG_LEVELS, type LogFormat } from './logger.js';
import { runRole } from './run-role.js';

/** spiped's defaults (see spiped(1)). */
const SPIPED_MAX_CONNECTIONS = 100;
const SPIPED_TIMEOUT_S = 5;

/**
 * spiped writes IPv4 in brackets too ("[127.0.0.1]:8025"); jumper wants
 * brackets only for IPv6.
 */
export function fromSpipedAddress(address: string): string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (!m) return address;
  return isIP(m[1]!) === 6 ? address : `${m[1]}:${m[2]}`;
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new CommanderArgError('expected a whole number');
  return Number(value);
}

/** -o: seconds, fractions allowed as spiped takes them; 0 means spiped's default (5 s), as in spiped. */
export function spipedTimeoutMs(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new CommanderArgError('expected seconds, e.g. 5 or 0.5');
  const seconds = Number(value);
  if (seconds === 0) return SPIPED_TIMEOUT_S * 1000;
  if (seconds * 1000 > MAX_DURATION_MS) throw new CommanderArgError(`expected at most ${Math.floor(MAX_DURATION_MS / 1000)} seconds`);
  return Math.max(1, Math.round(seconds * 1000));
}

/** -p: write our pid, and remove the file at exit if it is still ours (as spiped does). */
function writePidFile(path: string): void {
  const mine = `${process.pid}\n`;
  writeFileSync(path, mine);
  process.once('exit', () => {
    try {
      if (readFileSync(path, 'utf8') === mine) unlinkSync(path);
    } catch {
      // Gone already, or not readable: nothing of ours to remove.
    }
  });
}

async function readSpipedKey(file: string): Promise<TunnelKey> {
  if (file !== '-') return readKeyFile(file);
  // "-k -": the key comes on standard input, as spiped allows.
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const secret = Buffer.concat(chunks);
  try {
    return await deriveKey(secret, 'stdin');
  } finally {
    wipe(secret);
  }
}

interface SpipedFlags {
  e?: boolean;
  d?: boolean;
  s: string;
  t: string;
  k: string;
  f?: boolean;
  g?: boolean;
  j?: boolean;
  n: number;
  o: number; // milliseconds
  F?: boolean;
  p?: string;
  logLevel: string;
  logFormat?: LogFormat;
}

export function addSpipedCommand(program: Command): void {
  program
    .command('spiped')
    .description("run with spiped's command-line flags and wire protocol (drop-in for spiped 1.6)")
    .option('-e', 'take plain connections on -s, send encrypted ones to -t (client)')
    .option('-d', 'take encrypted connections on -s, send plain ones to -t (server)')
    .requiredOption('-s <source>', 'listen address: /path, host:port, [ip.v4]:port, [ipv6]:port')
    .requiredOption('-t <target>', 'target address, same forms')
    .requiredOption('-k <keyfile>', 'key file, or - to read it from standard input')
    .option('-f', 'no Diffie-Hellman: faster set-up, no forward secrecy')
    .option('-g', 'require forward secrecy: drop peers that use -f')
    .option('-j', 'disable TCP keep-alives')
    .option('-n <max>', 'simultaneous connections (0: no limit)', nonNegativeInt, SPIPED_MAX_CONNECTIONS)
    .addOption(new Option('-o <seconds>', 'connect and handshake timeout in seconds (0: the default)').argParser(spipedTimeoutMs).default(SPIPED_TIMEOUT_S * 1000, String(SPIPED_TIMEOUT_S)))
    .option('-F', 'run in the foreground (jumper always does)')
    .option('-p <pidfile>', 'write the process ID to this file (removed at exit)')
    .addOption(new Option('--log-level <level>', 'log level (jumper addition)').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'json or pretty (jumper addition)').choices(['json', 'pretty']))
    .addHelpText('after', '\nExample (a spiped unit with the binary swapped):\n  jumper spiped -d -s [0.0.0.0]:8025 -t [127.0.0.1]:22 -k /etc/spiped/ssh.key -F')
    .action(async (flags: SpipedFlags) => {
      if (Boolean(flags.e) === Boolean(flags.d)) throw new InvalidArgumentError('exactly one of -e and -d must be given');
      if (flags.f && flags.g) throw new InvalidArgumentError('-f and -g cannot be used together');
      const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
      const key = await readSpipedKey(flags.k);
      const timeoutMs = flags.o;
      const common = {
        listen: fromSpipedAddress(flags.s),
        connect: fromSpipedAddress(flags.t),
        key,
        logger,
        protocol: 'spiped' as const,
        pfs: flags.f ? ('off' as const) : flags.g ? ('require' as const) : ('default' as const),
        keepAlive: !flags.j,
        maxConnections: flags.n === 0 ? Number.MAX_SAFE_INTEGER : flags.n,
        connectTimeoutMs: timeoutMs,
        handshakeTimeoutMs: timeoutMs,
      };
      const jumper: Jumper = flags.e ? createClient(common) : createServer(common);
      if (flags.p) writePidFile(flags.p);
      await runRole({
        jumper,
        logger,
        drainTimeoutMs: 0,
        startFields: { connect: common.connect, key: key.fingerprint, protocol: 'spiped/1.6', pfs: common.pfs },
      });
    });
}
