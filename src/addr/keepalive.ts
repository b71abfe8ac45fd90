/**
 * TCP keep-alive for tunnelled sockets.
 *
 * Node's socket.setKeepAlive sets only the idle time; libuv then fixes the
 * probe interval at 1 s and the count at 10. Streams that went idle
 * together (a reconnect storm, a deploy) then probe together: 30 s timers
 * share the kernel's timer-wheel buckets, so thousands of probes and their
 * answers arrive in the same instant, overflow the softnet backlog of
 * loopback and veth (net.core.netdev_max_backlog, 1000 by default), and a
 * stream whose 10 probes in 10 s are all dropped is declared dead. Measured
 * with 10,000 held streams: 503 cut.
 *
 * So, where the addon is built, every socket gets all three timers (tcp(7))
 * and its idle time is spread over a window, which splits one probe storm
 * into many small ones. Without the addon, Node's setKeepAlive is used.
 */
import type net from 'node:net';
import { lazyNativeExports } from '../native/binding.js';
import { socketFd } from '../native/handover.js';
import { DEFAULTS } from '../options.js';

export interface KeepAliveTimers {
  /** Idle time before the first probe, at least. */
  idleSeconds: number;
  /** Each socket's idle time is idleSeconds plus a random 0..spread seconds. */
  spreadSeconds: number;
  /** Between unanswered probes. */
  intervalSeconds: number;
  /** Unanswered probes before the connection is declared dead. */
  count: number;
}

/** From DEFAULTS: a dead peer is noticed 30–45 s + 6 × 5 s after the last byte. */
export const KEEPALIVE_TIMERS: KeepAliveTimers = {
  idleSeconds: DEFAULTS.keepAliveIdleSeconds,
  spreadSeconds: DEFAULTS.keepAliveSpreadSeconds,
  intervalSeconds: DEFAULTS.keepAliveIntervalSeconds,
  count: DEFAULTS.keepAliveCount,
};

interface KeepAliveBinding {
  setKeepAlive(fd: number, idleSeconds: number, intervalSeconds: number, count: number): void;
  getKeepAlive(fd: number): { enabled: boolean; idleSeconds: number; intervalSeconds: number; count: number };
}

/** Runs for every socket: decided once. */
const keepAliveBinding = lazyNativeExports<KeepAliveBinding>(['setKeepAlive', 'getKeepAlive']);

function isTcp(socket: net.Socket): boolean {
  return (socket as unknown as { _handle?: object | null })._handle?.constructor.name === 'TCP';
}

/**
 * Turn keep-alive on for a connected socket. TCP sockets get the three
 * timers through the addon when it is built; anything else (Unix sockets
 * ignore keep-alive, no addon) goes through Node.
 */
export function enableKeepAlive(socket: net.Socket, timers: KeepAliveTimers = KEEPALIVE_TIMERS): void {
  const idle = timers.idleSeconds + Math.floor(Math.random() * (timers.spreadSeconds + 1));
  const native = isTcp(socket) ? keepAliveBinding() : null;
  if (native !== null) {
    try {
      native.setKeepAlive(socketFd(socket), idle, timers.intervalSeconds, timers.count);
      return;
    } catch {
      // e.g. the socket closed under us: Node's call below is a no-op then too
    }
  }
  socket.setKeepAlive(true, idle * 1000);
}

/** The socket's keep-alive settings as the kernel reports them (tests, diagnostics); null without the addon. */
export function readKeepAlive(socket: net.Socket): ReturnType<KeepAliveBinding['getKeepAlive']> | null {
  const native = keepAliveBinding();
  return native === null ? null : native.getKeepAlive(socketFd(socket));
}
