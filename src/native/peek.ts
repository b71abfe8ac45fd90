/**
 * What the kernel holds for a connected socket right now, read without
 * consuming it (native/src/socket_probe.cc). Node learns of a peer's FIN or
 * reset only on the event loop's next turn; a preconnected wire
 * (src/roles/preconnect.ts) is checked with this before a stream goes on it.
 */
import type { Socket } from 'node:net';
import { lazyNativeExports } from './binding.js';
import { socketFd } from './handover.js';

/** 'open': nothing to read; 'data': bytes wait; 'eof': the peer sent FIN; else a pending error's errno name. */
export type PeekResult = 'open' | 'data' | 'eof' | (string & {});

interface PeekBinding {
  peekSocket(fd: number): PeekResult;
}

/** Runs for every socket: decided once. */
const peekBinding = lazyNativeExports<PeekBinding>(['peekSocket']);

/** The socket's kernel state; undefined without the addon, or when the socket has no fd any more. */
export function peekSocket(socket: Socket): PeekResult | undefined {
  const native = peekBinding();
  if (native === null) return undefined;
  let fd: number;
  try {
    fd = socketFd(socket);
  } catch {
    return undefined;
  }
  return native.peekSocket(fd);
}

/**
 * Whether a socket Node saw end holds a reset instead: libuv reads a reset
 * that arrives behind queued bytes as EOF (a short read with POLLHUP is taken
 * for the end without the read that would fail), and the kernel still holds
 * the ECONNRESET. Call on 'end', while the fd is open.
 */
export function endedByReset(socket: Socket): boolean {
  return peekSocket(socket) === 'ECONNRESET';
}
