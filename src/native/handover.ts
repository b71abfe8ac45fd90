/**
 * Handing a connected net.Socket's fd to native code (the record pump, the
 * splice forwarder): what Node still holds for it (bytes read but not
 * consumed, writes not yet flushed) must be taken over or flushed first, and
 * Node's copy of the fd closed without a FIN or reset.
 */
import { fstatSync } from 'node:fs';
import type { Socket } from 'node:net';
import { SocketError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/** The OS fd under a connected net.Socket (TCP or Unix). @throws SocketError when it has none. */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new SocketError('socket has no usable file descriptor (destroyed, not connected, or not a stream socket)');
  }
  return fd;
}

/**
 * Whether the socket's fd is a stream socket the native code can take. A TCP
 * handle always is; a Pipe handle may be a Unix socket or, for exec targets,
 * a pipe, so only that case pays for an fstat.
 */
export function isStreamSocket(socket: Socket): boolean {
  const handle = (socket as unknown as { _handle?: object | null })._handle;
  if (handle?.constructor.name === 'TCP') return true;
  return fstatSync(socketFd(socket)).isSocket();
}

/** Reset a socket (TCP) or just close it (Unix sockets have no reset). */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** Everything Node buffered on a paused socket's readable side. */
export function takeReadable(socket: Socket): Buffer {
  const chunks: Buffer[] = [];
  let chunk: unknown;
  while (socket.readableLength > 0 && (chunk = socket.read()) !== null) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Resolves once Node handed every queued byte of `socket` to the kernel. */
export function flushed(socket: Socket): Promise<void> {
  if (socket.writableLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (socket.destroyed) {
        cleanup();
        reject(new Error('socket closed before its queued writes were flushed'));
      } else if (socket.writableLength === 0) {
        cleanup();
        resolve();
      }
    };
    const cleanup = (): void => {
      clearInterval(timer);
      socket.removeListener('drain', check);
      socket.removeListener('close', check);
    };
    // 'drain' only fires after a write that returned false: poll as well.
    const timer = setInterval(check, 1);
    socket.on('drain', check);
    socket.on('close', check);
  });
}
