/**
 * The provider: the service every system is put in front of.
 *
 * One TCP port, three modes chosen by the first byte (see protocol.ts):
 * echo, upload sink (checks every byte) and download source.
 *
 * It runs as a separate child process (`startProvider()` spawns this very file)
 * so that it does not share an event loop with the measuring client: with
 * both in one loop, the provider's work would be serialised with the client's
 * and every system would look slower by the same unknown amount. The child
 * exits by itself when its stdin closes, i.e. when the runner goes away.
 */

import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOOPBACK, PROVIDER_START_TIMEOUT_MS } from './config.js';
import { ManagedProcess } from './processes.js';
import { writePattern, withTimeout } from './net.js';
import {
  LENGTH_BYTES,
  MODE_DOWNLOAD,
  MODE_ECHO,
  MODE_UPLOAD,
  PatternChecker,
  encodeUploadReply,
} from './protocol.js';

/** Listen backlog of the provider: large enough for bursts of idle connections. */
const PROVIDER_BACKLOG = 4096;

function handleConnection(sock: net.Socket): void {
  sock.setNoDelay(true);
  sock.on('error', () => {
    /* clients may reset connections; that is not the provider's business */
  });
  let header: Buffer = Buffer.alloc(0);

  const onHeaderData = (data: Buffer): void => {
    header = header.length === 0 ? data : Buffer.concat([header, data]);
    const mode = header[0];
    if (mode === MODE_ECHO) {
      sock.removeListener('data', onHeaderData);
      startEcho(sock, header);
      return;
    }
    if (mode !== MODE_UPLOAD && mode !== MODE_DOWNLOAD) {
      sock.destroy();
      return;
    }
    if (header.length < 1 + LENGTH_BYTES) return;
    sock.removeListener('data', onHeaderData);
    const length = Number(header.readBigUInt64BE(1));
    const rest = header.subarray(1 + LENGTH_BYTES);
    if (mode === MODE_UPLOAD) startSink(sock, length, rest);
    else startSource(sock, length);
  };
  sock.on('data', onHeaderData);
}

function startEcho(sock: net.Socket, first: Buffer): void {
  const echo = (data: Buffer): void => {
    if (!sock.write(data)) {
      sock.pause();
      sock.once('drain', () => sock.resume());
    }
  };
  sock.on('data', echo);
  echo(first);
}

function startSink(sock: net.Socket, length: number, first: Buffer): void {
  const checker = new PatternChecker();
  let done = false;
  const consume = (data: Buffer): void => {
    if (done) {
      // More bytes than announced: a proxy duplicated data.
      sock.destroy();
      return;
    }
    checker.update(data);
    if (checker.bytes >= length) {
      done = true;
      sock.write(encodeUploadReply(checker.bytes, checker.ok && checker.bytes === length));
    }
  };
  sock.on('data', consume);
  if (first.length > 0) consume(first);
  else if (length === 0) consume(Buffer.alloc(0));
}

function startSource(sock: net.Socket, length: number): void {
  // Bytes arriving after the request are ignored.
  sock.on('data', () => undefined);
  writePattern(sock, length).then(
    () => sock.end(),
    () => sock.destroy(),
  );
}

/** Run the provider in this process; resolves with the bound port. */
export function serveProvider(port = 0): Promise<{ server: net.Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, handleConnection);
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port, backlog: PROVIDER_BACKLOG }, () => {
      const addr = server.address();
      if (typeof addr !== 'object' || addr === null) return reject(new Error('provider: no address'));
      resolve({ server, port: addr.port });
    });
  });
}

export interface ProviderHandle {
  readonly port: number;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

const THIS_FILE = fileURLToPath(import.meta.url);

/** Spawn the provider as a child process and wait for it to report its port. */
export async function startProvider(options: { port?: number; env?: NodeJS.ProcessEnv; label?: string } = {}): Promise<ProviderHandle> {
  const args = ['--import', 'tsx', THIS_FILE, '--serve', ...(options.port ? ['--port', String(options.port)] : [])];
  const proc = new ManagedProcess(options.label ?? 'provider', process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: path.resolve(path.dirname(THIS_FILE), '..', '..'),
    ...(options.env ? { env: options.env } : {}),
  });
  const port = await withTimeout(
    'provider start',
    PROVIDER_START_TIMEOUT_MS,
    new Promise<number>((resolve, reject) => {
      let buf = '';
      proc.child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        const m = /PORT (\d+)/.exec(buf);
        if (m?.[1] !== undefined) resolve(Number(m[1]));
      });
      void proc.waitExit().then(() => reject(new Error(`provider exited early: ${proc.output()}`)));
    }),
    () => proc.killNow(),
  );
  return { port, process: proc, stop: () => proc.stop() };
}

if (process.argv[1] === THIS_FILE && process.argv.includes('--serve')) {
  const at = process.argv.indexOf('--port');
  const { port } = await serveProvider(at > 0 ? Number(process.argv[at + 1]) : 0);
  process.stdout.write(`PORT ${port}\n`);
  // Die with the parent: the runner holds our stdin open.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
