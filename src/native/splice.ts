/**
 * The native splice forwarder for `jumper forward`: once the target is
 * dialled, the two plain sockets are joined in native code
 * (native/src/splice_pump.cc) with splice(2) through a pipe per direction,
 * on the shared reactor threads (native/src/reactor.cc), so the bytes never
 * pass through JS or user-space buffers.
 *
 * It ends exactly like two JS plainPipes under Conn: EOF on one side
 * becomes a half-close (FIN) on the other, 'done' once both directions
 * ended; any failure (or cancel) resets both sockets.
 *
 * Availability: the addon must be built and export startSplice, and none of
 * JUMPER_NO_NATIVE=1, JUMPER_NO_NATIVE_SPLICE=1 may be set.
 */
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { loadNative, nativeAvailable, NO_NATIVE_ENV } from './binding.js';
import { flushed, isStreamSocket, resetSocket, socketFd, takeReadable } from './handover.js';

/** Set to "1" to keep `jumper forward` on the JS pipes even when the addon is built. */
export const NO_NATIVE_SPLICE_ENV = 'JUMPER_NO_NATIVE_SPLICE';

/** Why a splice forwarder stopped. */
export type SpliceReason = 'done' | 'peer_reset' | 'io_error' | 'cancelled';

export interface SpliceResult {
  reason: SpliceReason;
  /** peer_reset/io_error: errno name (e.g. 'ECONNRESET'); cancelled: the reason given to cancel(). */
  detail?: string;
  /** Where a failure came from: 'plain' = the local (accepted) socket, 'wire' = the remote one. */
  side?: 'plain' | 'wire' | 'local';
  /** Bytes delivered local -> remote. */
  bytesUp: number;
  /** Bytes delivered remote -> local. */
  bytesDown: number;
}

declare const spliceHandleBrand: unique symbol;
type SpliceHandle = { readonly [spliceHandleBrand]: true };

interface NativeSpliceOptions {
  localFd: number;
  remoteFd: number;
  /** Bytes Node read from local before the handover: sent to remote first. */
  localPending?: Uint8Array;
  /** Bytes Node read from remote before the handover: sent to local first. */
  remotePending?: Uint8Array;
  onDone(result: SpliceResult): void;
}

interface SpliceBinding {
  startSplice(options: NativeSpliceOptions): SpliceHandle;
  cancelSplice(handle: SpliceHandle, reason: string): void;
  dupFd(fd: number): number;
}

function isSpliceBinding(value: unknown): value is SpliceBinding {
  const exports = value as Partial<Record<keyof SpliceBinding, unknown>> | null;
  return (
    typeof exports === 'object' &&
    exports !== null &&
    typeof exports.startSplice === 'function' &&
    typeof exports.cancelSplice === 'function' &&
    typeof exports.dupFd === 'function'
  );
}

let cached: SpliceBinding | null | undefined;

function spliceBinding(): SpliceBinding | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (nativeAvailable()) {
    const loaded: unknown = loadNative();
    if (isSpliceBinding(loaded)) cached = loaded;
  }
  return cached;
}

/**
 * Whether runNativeSplice can be used: the addon loads and exports it, and
 * neither JUMPER_NO_NATIVE=1 nor JUMPER_NO_NATIVE_SPLICE=1 is set.
 */
export function nativeSpliceAvailable(): boolean {
  if (process.env[NO_NATIVE_ENV] === '1' || process.env[NO_NATIVE_SPLICE_ENV] === '1') return false;
  return spliceBinding() !== null;
}

export interface NativeSplice {
  /** Settles once, after both fds were closed. Never rejects. */
  done: Promise<SpliceResult>;
  /** Reset both sockets promptly; `done` then reports 'cancelled' (no-op once finished). */
  cancel(reason: string): void;
}

/**
 * Join two connected stream sockets (TCP or Unix) in native code.
 *
 * Both should be paused. Bytes Node already buffered are taken over, queued
 * writes flushed first; then both sockets are destroyed (only Node's fd
 * copy is closed) and must not be used again.
 *
 * @throws when the forwarder is unavailable, a socket has no fd, is not a
 *   socket, or Node already ended its writable side: nothing was taken
 *   over, so the caller can use the JS pipes instead.
 */
export function runNativeSplice(local: Socket, remote: Socket): NativeSplice {
  const binding = nativeSpliceAvailable() ? spliceBinding() : null;
  if (!binding) throw new Error('native splice forwarder unavailable (addon not built, stale, or disabled)');
  for (const socket of [local, remote]) {
    if (!isStreamSocket(socket)) throw new Error('native splice needs stream sockets (TCP or Unix)');
    // Node already sent our FIN: the native side could not pass EOF on faithfully.
    if (socket.writableEnded) throw new Error('socket already ended its writable side');
  }
  local.pause();
  remote.pause();

  let handle: SpliceHandle | undefined;
  let cancelReason: string | undefined;
  let settle!: (result: SpliceResult) => void;
  const done = new Promise<SpliceResult>((resolve) => (settle = resolve));
  const failEarly = (result: Omit<SpliceResult, 'bytesUp' | 'bytesDown'>): void => {
    resetSocket(local);
    resetSocket(remote);
    settle({ ...result, bytesUp: 0, bytesDown: 0 });
  };

  const start = (): void => {
    if (cancelReason !== undefined) {
      failEarly({ reason: 'cancelled', detail: cancelReason, side: 'local' });
      return;
    }
    let localFd = -1;
    let remoteFd = -1;
    try {
      localFd = binding.dupFd(socketFd(local));
      remoteFd = binding.dupFd(socketFd(remote));
      handle = binding.startSplice({
        localFd,
        remoteFd,
        localPending: takeReadable(local),
        remotePending: takeReadable(remote),
        onDone: (result) => settle(result),
      });
    } catch (err) {
      if (localFd >= 0) closeSync(localFd);
      if (remoteFd >= 0) closeSync(remoteFd);
      failEarly({ reason: 'io_error', detail: err instanceof Error ? err.message : String(err), side: 'local' });
      return;
    }
    // Node's copies only: no shutdown, no reset; the forwarder's dups keep the connections.
    local.destroy();
    remote.destroy();
  };

  if (local.writableLength === 0 && remote.writableLength === 0) {
    start();
  } else {
    Promise.all([flushed(local), flushed(remote)]).then(start, (err: unknown) => {
      failEarly({ reason: 'io_error', detail: err instanceof Error ? err.message : String(err), side: 'local' });
    });
  }

  return {
    done,
    cancel(reason: string): void {
      if (handle) binding.cancelSplice(handle, reason);
      else cancelReason ??= reason;
    },
  };
}
