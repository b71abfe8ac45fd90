/**
 * Real providers for tests: TCP/Unix servers on loopback that record what
 * they saw, always closed at teardown.
 */
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

export interface ProviderRecord {
  connections: number;
  /** Remote addresses of accepted connections. */
  peers: string[];
  /** Bytes received, per connection, in arrival order. */
  received: Buffer[][];
  /** How each connection ended: 'end' (clean EOF), 'reset', 'error:<code>'. */
  endings: string[];
}

export interface Provider extends ProviderRecord {
  /** Resolves when connection `index` has ended (EOF, reset or error). */
  ended(index: number): Promise<string>;
  server: net.Server;
  port: number;
  address: string;
  close(): Promise<void>;
}

type Handler = (socket: net.Socket, index: number) => void;

/** A provider on 127.0.0.1:0 (or a Unix path) that runs `handler` for each connection. */
export async function startProvider(t: ExecutionContext, handler: Handler, options: { path?: string } = {}): Promise<Provider> {
  const record: ProviderRecord = { connections: 0, peers: [], received: [], endings: [] };
  const sockets = new Set<net.Socket>();
  const endWaiters = new Map<number, (how: string) => void>();
  const settle = (index: number, how: string) => {
    record.endings[index] ??= how;
    endWaiters.get(index)?.(record.endings[index]!);
  };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const index = record.connections++;
    sockets.add(socket);
    record.peers.push(`${socket.remoteAddress}:${socket.remotePort}`);
    const chunks: Buffer[] = [];
    record.received.push(chunks);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => settle(index, 'end'));
    socket.on('error', (err: NodeJS.ErrnoException) => settle(index, err.code === 'ECONNRESET' ? 'reset' : `error:${err.code}`));
    socket.once('close', () => {
      sockets.delete(socket);
      settle(index, 'closed');
    });
    handler(socket, index);
  });
  await new Promise<void>((resolve) => (options.path ? server.listen(options.path, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const provider: Provider = Object.assign(record, {
    server,
    port,
    address: options.path ?? `127.0.0.1:${port}`,
    ended: (index: number) =>
      record.endings[index] !== undefined
        ? Promise.resolve(record.endings[index]!)
        : new Promise<string>((resolve) => endWaiters.set(index, resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
  t.teardown(() => provider.close());
  return provider;
}

/** Echo provider: returns what it receives and half-closes after the peer does. */
export function startEchoProvider(t: ExecutionContext, options: { path?: string } = {}): Promise<Provider> {
  return startProvider(
    t,
    (socket) => {
      socket.on('data', (c: Buffer) => socket.write(c));
      socket.once('end', () => socket.end());
    },
    options,
  );
}

export const sha256 = (data: Buffer | Buffer[]): string => {
  const h = createHash('sha256');
  for (const b of Array.isArray(data) ? data : [data]) h.update(b);
  return h.digest('hex');
};

/**
 * Bulk provider: sends `download` bytes then half-closes, and hashes what it
 * receives until EOF; `results[i]` resolves with connection i's received hash.
 */
export async function startBulkProvider(t: ExecutionContext, download: Buffer): Promise<Provider & { hashes: Promise<string>[] }> {
  const hashes: Promise<string>[] = [];
  const provider = await startProvider(t, (socket) => {
    const h = createHash('sha256');
    hashes.push(
      new Promise<string>((resolve, reject) => {
        socket.on('data', (c: Buffer) => h.update(c));
        socket.once('end', () => resolve(h.digest('hex')));
        socket.once('error', reject);
      }),
    );
    socket.end(download);
  });
  return Object.assign(provider, { hashes });
}

export interface Exchange {
  received: Buffer;
  /** 'end' for a clean EOF, 'reset' for ECONNRESET. */
  ending: string;
}

/** Connect, send `upload` (then half-close unless keepOpen), collect everything until EOF or reset. */
export function exchange(address: { port?: number; path?: string; host?: string }, upload: Buffer, options: { keepOpen?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = address.path
      ? net.connect({ path: address.path, allowHalfOpen: true })
      : net.connect({ port: address.port!, host: address.host ?? '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => {
      socket.end();
      resolve({ received: Buffer.concat(chunks), ending: 'end' });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve({ received: Buffer.concat(chunks), ending: 'reset' });
      else reject(err);
    });
    socket.once('connect', () => {
      if (upload.length > 0) socket.write(upload);
      if (!options.keepOpen) socket.end();
    });
  });
}

export { randomBytes };
