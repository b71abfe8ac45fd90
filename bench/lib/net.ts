/**
 * Socket helpers shared by the measurements: loopback-only connect with a
 * deadline, exact reads, back-pressured pattern writes, port probing.
 */

import net from 'node:net';
import { LOOPBACK, PORT_POLL_INTERVAL_MS } from './config.js';
import { MODE_ECHO, WRITE_CHUNK, patternSlice } from './protocol.js';

export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** Race a promise against a deadline; `onTimeout` may release resources. */
export async function withTimeout<T>(
  what: string,
  ms: number,
  promise: Promise<T>,
  onTimeout?: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new TimeoutError(what, ms));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Ask the kernel for a currently free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Connect to 127.0.0.1:port; rejects on error or after `timeoutMs`. */
export function connect(port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: LOOPBACK, port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new TimeoutError(`connect 127.0.0.1:${port}`, timeoutMs));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
  });
}

/**
 * Read exactly `n` bytes (in paused mode) from `sock`. Any extra bytes are
 * pushed back with unshift. Rejects on close, error or deadline.
 */
export function readExact(sock: net.Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    const cleanup = (): void => {
      clearTimeout(timer);
      sock.removeListener('readable', onReadable);
      sock.removeListener('close', onClose);
      sock.removeListener('error', onError);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (have < n && (chunk = sock.read() as Buffer | null) !== null) {
        const need = n - have;
        if (chunk.length > need) {
          sock.unshift(chunk.subarray(need));
          chunk = chunk.subarray(0, need);
        }
        parts.push(chunk);
        have += chunk.length;
      }
      if (have >= n) {
        cleanup();
        resolve(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n));
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`connection closed after ${have}/${n} bytes`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new TimeoutError(`read ${n} bytes`, timeoutMs));
    }, timeoutMs);
    sock.on('readable', onReadable);
    sock.once('close', onClose);
    sock.once('error', onError);
    onReadable();
  });
}

/** Write `length` pattern bytes starting at stream offset 0, honouring back-pressure. */
export function writePattern(sock: net.Socket, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    const onError = (err: Error): void => {
      sock.removeListener('drain', pump);
      reject(err);
    };
    const pump = (): void => {
      while (sent < length) {
        const n = Math.min(WRITE_CHUNK, length - sent);
        const more = sock.write(patternSlice(sent, n));
        sent += n;
        if (!more) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.removeListener('error', onError);
      resolve();
    };
    sock.once('error', onError);
    pump();
  });
}

/** Open a connection and prove the whole chain works: send 'E', read 'E'. */
export async function echoHandshake(port: number, timeoutMs: number): Promise<net.Socket> {
  const sock = await connect(port, timeoutMs);
  try {
    sock.write(Buffer.of(MODE_ECHO));
    const b = await readExact(sock, 1, timeoutMs);
    if (b[0] !== MODE_ECHO) throw new Error('echo handshake returned a wrong byte');
    return sock;
  } catch (err) {
    sock.destroy();
    throw err;
  }
}

/** Poll until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  abortIf?: () => string | null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = abortIf?.();
    if (why) throw new Error(why);
    try {
      const s = await connect(port, Math.max(100, deadline - Date.now()));
      s.destroy();
      return;
    } catch {
      if (Date.now() >= deadline) throw new TimeoutError(`waiting for 127.0.0.1:${port}`, timeoutMs);
      await sleep(PORT_POLL_INTERVAL_MS);
    }
  }
}

/** Destroy sockets and wait until they are all closed (bounded). */
export async function closeAll(socks: readonly net.Socket[], timeoutMs: number): Promise<void> {
  const closed = socks.map(
    (s) =>
      new Promise<void>((resolve) => {
        if (s.destroyed && s.closed) return resolve();
        s.once('close', () => resolve());
        s.destroy();
      }),
  );
  await withTimeout('closing sockets', timeoutMs, Promise.all(closed)).catch(() => undefined);
}
