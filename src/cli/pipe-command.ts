/**
 * `jumper pipe`: like spipe, join stdin/stdout to one tunnel stream, e.g.
 *   ssh -o ProxyCommand='jumper pipe --connect host:8022 --key k' host
 *
 * It runs a client jumper on a private Unix socket and makes one connection
 * to it, so the stream gets exactly the client role's handshake, records and
 * half-close handling. Exits 0 when the stream ended cleanly, 1 otherwise.
 */
import { Command, Option } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readKeyFile } from '../keys/key-file.js';
import { DEFAULTS } from '../options.js';
import { createClient } from '../roles/client.js';
import { createLogger, LOG_LEVELS } from './logger.js';
import { parseTimeout } from './parse.js';
import { protocolOptions, type ProtocolFlags } from './protocol-flags.js';

interface PipeFlags extends ProtocolFlags {
  connect: string;
  key: string;
  connectTimeout: number;
  logLevel: string;
}

export function addPipeCommand(program: Command): void {
  program
    .command('pipe')
    .description('join standard input and output to one encrypted stream to a server jumper (like spipe)')
    .requiredOption('-c, --connect <addr>', 'server jumper (or spiped -d) address')
    .requiredOption('-k, --key <file>', 'pre-shared key file')
    .addOption(new Option('--protocol <name>', 'jumper, or spiped to talk to spiped -d').choices(['jumper', 'spiped']).default('jumper'))
    .option('--no-pfs', 'spiped protocol: no Diffie-Hellman (spiped -f)')
    .option('--require-pfs', 'spiped protocol: refuse a peer without Diffie-Hellman (spiped -g)')
    .addOption(new Option('--connect-timeout <duration>', 'time allowed to connect').argParser(parseTimeout).default(DEFAULTS.connectTimeoutMs, '5s'))
    .addOption(new Option('--log-level <level>', 'log level (stderr)').choices(LOG_LEVELS).default('warn'))
    .addHelpText('after', "\nExample:\n  ssh -o ProxyCommand='jumper pipe --connect %h:8022 --key ~/.ssh/jumper.key' server")
    .action(async (flags: PipeFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'jumper' });
      const proto = protocolOptions(flags);
      const key = await readKeyFile(flags.key);
      // The private socket's directory goes whatever ends the process: error, signal or the stream's end.
      const dir = mkdtempSync(join(tmpdir(), 'jumper-pipe-'));
      const removeDir = () => rmSync(dir, { recursive: true, force: true });
      process.once('exit', removeDir);
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
        process.once(signal, () => process.exit(1));
      }
      const path = join(dir, 'pipe.sock');
      const client = createClient({ listen: path, connect: flags.connect, key, logger, ...proto, connectTimeoutMs: flags.connectTimeout, maxConnections: 1 });
      await client.listen();
      // Exit once the stream is over *and* our end has written everything to stdout.
      const summary = new Promise<{ reason: string; message?: string }>((resolve) =>
        client.once('close', (s) => resolve({ reason: s.reason, message: s.error?.message })),
      );
      const socket = net.connect({ path, allowHalfOpen: true });
      socket.on('error', () => {}); // the close summary reports the reason
      socket.once('close', () => {
        void summary.then(({ reason, message }) => {
          if (reason !== 'done') process.stderr.write(`jumper pipe: ${message ?? reason} (${reason})\n`);
          process.stdout.write('', () => process.exit(reason === 'done' ? 0 : 1));
        });
      });
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
    });
}
