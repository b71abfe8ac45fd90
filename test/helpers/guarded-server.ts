/**
 * A server jumper under attack: an echo provider behind it, a capturing
 * logger, and the checks every hostile case ends with — only that
 * connection closed, one log line with the reason, nothing reached the
 * provider, and a good client is served right after.
 */
import type { ExecutionContext } from 'ava';
import net from 'node:net';
import { createClient, createServer, type ConnSummary, type ServerJumper, type TunnelKey } from '../../src/index.js';
import { startClientHandshake } from '../../src/proto/handshake.js';
import { RecordOpener, RecordSealer } from '../../src/proto/record.js';
import { SERVER_HELLO_BYTES } from '../../src/proto/handshake.js';
import { captureLogger, type CapturedLogger } from './capture-logger.js';
import { exchange, randomBytes, sha256 } from './providers.js';
import { startStrictEchoProvider, type StrictProvider } from './tcp-ending.js';
import { makeKey } from './tunnel.js';

export interface GuardedServer {
  server: ServerJumper;
  port: number;
  key: TunnelKey;
  /** Echo provider whose endings are the kernel's word (RST vs FIN). */
  provider: StrictProvider;
  logger: CapturedLogger;
  closed: ConnSummary[];
  /** Resolves once `n` connections have closed. */
  closedOn(n: number): Promise<ConnSummary[]>;
}

export async function startGuardedServer(
  t: ExecutionContext,
  options: { handshakeTimeoutMs?: number; maxConnections?: number } = {},
): Promise<GuardedServer> {
  const provider = await startStrictEchoProvider(t);
  const key = await makeKey();
  const logger = captureLogger();
  const server = createServer({
    listen: '127.0.0.1:0',
    connect: provider.address,
    key,
    logger,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    maxConnections: options.maxConnections ?? 1000,
  });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const closed: ConnSummary[] = [];
  const waiters: (() => void)[] = [];
  server.on('close', (s) => {
    closed.push(s);
    for (const w of waiters.splice(0)) w();
  });
  const closedOn = (n: number): Promise<ConnSummary[]> =>
    new Promise((resolve) => {
      const check = () => (closed.length >= n ? resolve(closed) : waiters.push(check));
      check();
    });
  return { server, port: server.port()!, key, provider, logger, closed, closedOn };
}

/**
 * The hostile connection closed with `reason`, logged exactly one failure
 * line with that reason, and — when it never authenticated — the provider
 * saw no connection at all.
 */
export async function assertRejected(t: ExecutionContext, g: GuardedServer, reason: string | RegExp, options: { providerConnections?: number } = {}): Promise<ConnSummary> {
  const [summary] = await g.closedOn(1);
  if (typeof reason === 'string') t.is(summary!.reason, reason);
  else t.regex(summary!.reason, reason);
  const lines = g.logger.failures().filter((l) => l.conn === summary!.id);
  t.is(lines.length, 1, 'exactly one log line for the failed connection');
  t.is(lines[0]?.reason, summary!.reason);
  t.is(g.provider.connections, options.providerConnections ?? 0);
  return summary!;
}

/** A fresh client jumper with the right key gets a 100 kB echo through the same server. */
export async function assertStillServes(t: ExecutionContext, g: GuardedServer): Promise<void> {
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${g.port}`, key: g.key });
  await client.listen();
  try {
    const body = randomBytes(100_000);
    const result = await exchange({ port: client.port()! }, body);
    t.is(sha256(result.received), sha256(body), 'a good connection right after is served');
  } finally {
    await client.close({ drainTimeoutMs: 0 });
  }
}

/** Connect, write `bytes` (then FIN unless keepOpen), and resolve with how the socket ended. */
export function sendRaw(port: number, bytes: Buffer, options: { keepOpen?: boolean } = {}) {
  return exchange({ port }, bytes, options);
}

/** A raw client that did a real handshake and proved liveness: the test then writes records by hand. */
export interface RawSession {
  socket: net.Socket;
  sealer: RecordSealer;
  opener: RecordOpener;
  /** Resolves with how the socket ended: 'end', 'reset' or 'close'. */
  ended: Promise<string>;
  /** Wire bytes received after the server hello. */
  received: Buffer[];
}

export async function openRawSession(port: number, key: TunnelKey, options: { liveness?: boolean } = {}): Promise<RawSession> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const ended = new Promise<string>((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' ? 'reset' : `error:${e.code}`));
    socket.once('close', () => resolve('close'));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const handshake = startClientHandshake(key);
  socket.write(handshake.hello);
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length >= SERVER_HELLO_BYTES) {
        socket.off('data', onData);
        socket.pause();
        resolve(all);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
  const keys = handshake.finish(reply.subarray(0, SERVER_HELLO_BYTES));
  const sealer = new RecordSealer(keys.sendKey);
  const opener = new RecordOpener(keys.recvKey);
  if (options.liveness !== false) {
    const out: Buffer[] = [];
    sealer.sealData(Buffer.alloc(0), out);
    socket.write(Buffer.concat(out));
  }
  const received: Buffer[] = reply.length > SERVER_HELLO_BYTES ? [reply.subarray(SERVER_HELLO_BYTES)] : [];
  socket.on('data', (c: Buffer) => received.push(c));
  socket.resume();
  return { socket, sealer, opener, ended, received };
}
