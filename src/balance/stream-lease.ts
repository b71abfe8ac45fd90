/**
 * A dialer hands out a socket; the stream on it may outlive the JS socket
 * object (the native pump takes the fd over). So a dialer that counts its
 * streams (a balanced dial per backend, an on-demand provider for its idle
 * stop) attaches a lease to the socket, and the connection releases it when
 * the stream ends, in JS or native code alike.
 */
import type { Socket } from 'node:net';

export interface StreamLease {
  /** The backend the stream went to, for the connection's log line (balanced dials). */
  readonly target?: string;
  /** Called once when the stream has ended. */
  release(): void;
  /**
   * A new stream would not go to this backend now (removed, or down or
   * ejected while another backend is up): a wire made ahead of demand
   * should not carry one there.
   */
  stale?(): boolean;
}

const leases = new WeakMap<Socket, StreamLease>();

export function attachLease(socket: Socket, lease: StreamLease): void {
  leases.set(socket, lease);
}

/**
 * Call `release` too when the stream on `socket` ends, on top of any lease
 * the dialer attached. The on-demand provider's dialer attaches none today
 * (--start is refused with balancing); merging keeps a pool's release from
 * being overwritten should that change.
 */
export function alsoOnRelease(socket: Socket, release: () => void): void {
  const inner = leases.get(socket);
  if (!inner) {
    leases.set(socket, { release });
    return;
  }
  leases.set(socket, {
    ...(inner.target !== undefined ? { target: inner.target } : {}),
    stale: () => inner.stale?.() === true,
    release: () => {
      inner.release();
      release();
    },
  });
}

/** The socket's lease, left in place. */
export function leaseOf(socket: Socket): StreamLease | undefined {
  return leases.get(socket);
}

/** The socket's lease, removed so it is released only once. */
export function takeLease(socket: Socket): StreamLease | undefined {
  const lease = leases.get(socket);
  if (lease) leases.delete(socket);
  return lease;
}
