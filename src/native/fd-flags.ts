/**
 * O_NONBLOCK of a socket's descriptor (native/src/fd_flags.cc). The flag
 * belongs to the open socket, not to one descriptor: a child given the
 * socket as its stdio, or a hand-off receiver, shares it with the jumper.
 * libuv makes a child's stdio blocking, so the jumper's own handle on that
 * socket blocks too (exec-target.ts); a receiver expects a blocking socket,
 * as accept(2) returns one (handoff.ts).
 */
import type { Socket } from 'node:net';
import { lazyNativeExports } from './binding.js';
import { socketFd } from './handover.js';

interface FdFlagsBinding {
  setNonBlocking(fd: number, on: boolean): void;
}

const flagsBinding = lazyNativeExports<FdFlagsBinding>(['setNonBlocking']);

/**
 * Set or clear O_NONBLOCK on `target` (a socket or a descriptor). Whether it
 * was done: false without the addon. Throws the fcntl error (EBADF, ...).
 */
export function setNonBlocking(target: Socket | number, on: boolean): boolean {
  const native = flagsBinding();
  if (native === null) return false;
  native.setNonBlocking(typeof target === 'number' ? target : socketFd(target), on);
  return true;
}
