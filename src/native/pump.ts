/**
 * The native record pump: after the handshake, one connection's transport
 * records (src/proto/record.ts) are sealed and opened by native code
 * (native/src/record_pump.cc) instead of the JS event loop, on one of a few
 * shared reactor threads (native/src/reactor.cc: epoll over every pump's
 * sockets), not a thread per connection.
 *
 * The pump owns duplicates of both sockets' fds; the JS sockets are
 * destroyed (which closes only Node's copy, without FIN or RST). It ends
 * exactly like the JS pipes: END records <-> FIN both ways, 'done' once both
 * directions ended; on failure the plain peer gets a reset and, when the
 * failure was not the tunnel peer's own, the tunnel peer gets an ABORT.
 *
 * Availability: the addon must be built and export startPump, and neither
 * JUMPER_NO_NATIVE=1 nor JUMPER_NO_NATIVE_PUMP=1 may be set.
 */
import { closeSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { ABORT_LINGER_MS } from '../options.js';
import { loadNative, nativeAvailable, NO_NATIVE_ENV } from './binding.js';
import { flushed, isStreamSocket, resetSocket as reset, socketFd, takeReadable } from './handover.js';


/** Set to "1" to keep the record layer in JS even when the addon is built. */
export const NO_NATIVE_PUMP_ENV = 'JUMPER_NO_NATIVE_PUMP';

/** Why a pump stopped. */
export type PumpReason =
  | 'done'
  | 'tampered'
  | 'truncated'
  | 'bad_record'
  | 'peer_abort'
  | 'peer_reset'
  | 'io_error'
  | 'cancelled';

export interface PumpResult {
  reason: PumpReason;
  /**
   * peer_abort: the peer's (sanitised) reason; peer_reset/io_error: errno
   * name (e.g. 'ECONNRESET', 'EPIPE'); cancelled: the reason given to
   * cancel(); tampered/truncated/bad_record: a description.
   */
  detail?: string;
  /** Where the failure came from: like Conn.fail's `side` ('plain' | 'wire' | 'local'). Absent when done. */
  side?: 'plain' | 'wire' | 'local';
  /** Plaintext bytes read from plain and sealed toward the wire (includes plainPending). */
  bytesUp: number;
  /** Plaintext bytes written to plain (includes openedPending). */
  bytesDown: number;
  /** The addon's only: a wire socket left open after an ABORT, for lingerClose (never reaches callers). */
  lingerFd?: number;
  /** The addon's only: bytes of the last record and the ABORT still to write on lingerFd, then the FIN. */
  lingerPending?: Buffer;
}

/** Opaque handle returned by the addon's startPump. */
declare const pumpHandleBrand: unique symbol;
export type PumpHandle = { readonly [pumpHandleBrand]: true };

/** Options of the addon's startPump (raw fds, owned by the pump once it returns). */
export interface NativePumpOptions {
  plainFd: number;
  wireFd: number;
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** Records already sealed with sendKey (RecordSealer.count). */
  sendCounter: number;
  /** Records already opened with recvKey (RecordOpener.count). */
  recvCounter: number;
  /** Records already sealed by JS, not sent (at most 4096 bytes): they lead the first send. */
  sealedPending?: Uint8Array;
  /** Wire bytes already read by JS but not opened: parsed first. */
  wirePending?: Uint8Array;
  /** Plaintext already read from plain by JS but not sealed: sealed first. */
  plainPending?: Uint8Array;
  /** Plaintext already opened by JS but not written to plain: written first. */
  openedPending?: Uint8Array;
  /** JS already opened the peer's END (plain is half-closed after openedPending). */
  recvEnded?: boolean;
  onDone(result: PumpResult): void;
}

/** The addon exports this module uses (binding.ts types only the namespace ones). */
interface PumpBinding {
  startPump(options: NativePumpOptions): PumpHandle;
  cancelPump(handle: PumpHandle, reason: string): void;
  dupFd(fd: number): number;
}

function isPumpBinding(value: unknown): value is PumpBinding {
  const exports = value as Partial<Record<keyof PumpBinding, unknown>> | null;
  return (
    typeof exports === 'object' &&
    exports !== null &&
    typeof exports.startPump === 'function' &&
    typeof exports.cancelPump === 'function' &&
    typeof exports.dupFd === 'function'
  );
}

let cached: PumpBinding | null | undefined;

function pumpBinding(): PumpBinding | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (nativeAvailable()) {
    const loaded: unknown = loadNative();
    if (isPumpBinding(loaded)) cached = loaded;
  }
  return cached;
}

/**
 * Whether runNativePump can be used: the addon loads and exports the pump,
 * and neither JUMPER_NO_NATIVE=1 nor JUMPER_NO_NATIVE_PUMP=1 is set.
 */
export function nativePumpAvailable(): boolean {
  if (process.env[NO_NATIVE_ENV] === '1' || process.env[NO_NATIVE_PUMP_ENV] === '1') return false;
  return pumpBinding() !== null;
}

function requireBinding(): PumpBinding {
  const binding = nativePumpAvailable() ? pumpBinding() : null;
  if (!binding) throw new Error('native record pump unavailable (addon not built, stale, or disabled)');
  return binding;
}

/** A close-on-exec duplicate of `fd` (the same socket). */
export function dupFd(fd: number): number {
  return requireBinding().dupFd(fd);
}

export interface RunNativePumpOptions {
  /** The plaintext socket (consumer on the client, provider on the server). */
  plain: Socket;
  /** The socket carrying records (the other jumper). */
  wire: Socket;
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** RecordSealer.count: records this side already sealed (the client's liveness record = 1). */
  sendCounter: number;
  /** RecordOpener.count: records this side already opened. */
  recvCounter: number;
  /**
   * Records JS sealed but did not write (the client's ORIGIN): sent first,
   * in one send with the first record the pump seals when the plaintext is
   * already there, else alone at once.
   */
  sealedPending?: Buffer;
  /** Wire bytes read by JS, not yet opened (e.g. the rest after the handshake reply). */
  wirePending?: Buffer;
  /** Plaintext JS already opened but did not write to `plain` (the server's early records). */
  openedPending?: Buffer;
  /** JS already opened the peer's END. */
  recvEnded?: boolean;
}

export interface NativePump {
  /** Settles once, after the pump closed both fds. Never rejects. */
  done: Promise<PumpResult>;
  /** Stop promptly; `done` then reports 'cancelled' with `reason` as detail (no-op once finished). */
  cancel(reason: string): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Hand a connection's record layer to the native pump.
 *
 * Both sockets must be connected and should be paused (no 'data' listeners
 * left by the caller). Bytes Node already buffered are taken over: the
 * readable buffer of `wire` is appended to `wirePending`, that of `plain`
 * is sealed first, and queued writes are flushed before the handoff. Both
 * sockets are then destroyed (only Node's fd copy is closed) and must not be
 * used again; listeners for 'error'/'close' may still fire on them.
 *
 * @throws when the pump is unavailable, or a socket has no fd or is not a
 *   socket (e.g. a pipe): nothing was taken over, the sockets are untouched,
 *   so the caller can fall back to the JS pipes.
 */
export function runNativePump(options: RunNativePumpOptions): NativePump {
  const binding = requireBinding();
  for (const socket of [options.plain, options.wire]) {
    // e.g. a pipe-backed net.Socket (exec targets): keep the JS pipes.
    if (!isStreamSocket(socket)) throw new Error('native record pump needs stream sockets (TCP or Unix)');
  }
  options.plain.pause();
  options.wire.pause();

  // Only `state` and `settle` outlive the hand-over: a closure that lives as
  // long as the stream must not capture the sockets or the options, or the
  // destroyed sockets would stay in memory for every held stream.
  const state: LaunchState = { handle: undefined, cancelReason: undefined };
  let settle!: (result: PumpResult) => void;
  const done = new Promise<PumpResult>((resolve) => (settle = resolve));
  if (options.plain.writableLength === 0 && options.wire.writableLength === 0) {
    launch(binding, options, state, settle);
  } else {
    const launchLater = launch.bind(null, binding, options, state, settle);
    const failLater = failEarly.bind(null, options, settle);
    Promise.all([flushed(options.plain), flushed(options.wire)]).then(launchLater, (err: unknown) => {
      failLater({ reason: 'io_error', detail: err instanceof Error ? err.message : String(err), side: 'local' });
    });
  }
  return {
    done,
    cancel(reason: string): void {
      if (state.handle) binding.cancelPump(state.handle, reason);
      else state.cancelReason ??= reason;
    },
  };
}


/**
 * Close a wire the pump ended with an ABORT: write what the kernel had no
 * room for yet (the last record and the ABORT, `pending`) and the FIN, and
 * read and drop what the peer still sends until its own FIN, at most
 * ABORT_LINGER_MS in all. Closing at once would answer those bytes with a
 * reset, which can overtake the ABORT; the JS path's end()-then-destroy does
 * the same.
 */
function lingerClose(fd: number, pending: Buffer | undefined): void {
  let socket: Socket;
  try {
    socket = new net.Socket({ fd, readable: true, writable: pending !== undefined, allowHalfOpen: true });
  } catch {
    closeSync(fd);
    return;
  }
  let peerEnded = false;
  let sent = pending === undefined;
  // Out of time with the ABORT still unsent: a reset, not a FIN after part of a record (read as truncation).
  const timer = setTimeout(() => (sent ? socket.destroy() : reset(socket)), ABORT_LINGER_MS).unref();
  socket.on('error', () => socket.destroy());
  socket.once('close', () => clearTimeout(timer));
  const closeWhenBoth = (): void => {
    if (peerEnded && sent) socket.destroy();
  };
  socket.once('end', () => {
    peerEnded = true;
    closeWhenBoth();
  });
  if (pending !== undefined) {
    socket.end(pending, () => {
      sent = true;
      closeWhenBoth();
    });
  }
  socket.resume();
}

interface LaunchState {
  handle: PumpHandle | undefined;
  cancelReason: string | undefined;
}

function failEarly(
  options: RunNativePumpOptions,
  settle: (result: PumpResult) => void,
  result: Omit<PumpResult, 'bytesUp' | 'bytesDown'>,
): void {
  reset(options.plain);
  options.wire.destroy();
  settle({ ...result, bytesUp: 0, bytesDown: 0 });
}

/** Dup the fds, take Node's buffered bytes, start the native pump, drop Node's copies. */
function launch(binding: PumpBinding, options: RunNativePumpOptions, state: LaunchState, settle: (result: PumpResult) => void): void {
  const { plain, wire } = options;
  if (state.cancelReason !== undefined) {
    failEarly(options, settle, { reason: 'cancelled', detail: state.cancelReason, side: 'local' });
    return;
  }
  let plainFd = -1;
  let wireFd = -1;
  try {
    plainFd = binding.dupFd(socketFd(plain));
    wireFd = binding.dupFd(socketFd(wire));
    const pendingWire = takeReadable(wire);
    const wirePending =
      options.wirePending && options.wirePending.length > 0
        ? pendingWire.length > 0
          ? Buffer.concat([options.wirePending, pendingWire])
          : options.wirePending
        : pendingWire;
    const plainPending = takeReadable(plain);
    const pumpOptions: NativePumpOptions = {
      plainFd,
      wireFd,
      sendKey: options.sendKey,
      recvKey: options.recvKey,
      sendCounter: options.sendCounter,
      recvCounter: options.recvCounter,
      sealedPending: options.sealedPending ?? EMPTY,
      wirePending,
      plainPending,
      openedPending: options.openedPending ?? EMPTY,
      recvEnded: options.recvEnded ?? false,
      onDone: (result) => {
        if (result.lingerFd !== undefined) lingerClose(result.lingerFd, result.lingerPending);
        delete result.lingerFd;
        delete result.lingerPending;
        settle(result);
      },
    };
    state.handle = binding.startPump(pumpOptions);
  } catch (err) {
    if (plainFd >= 0) closeSync(plainFd);
    if (wireFd >= 0) closeSync(wireFd);
    failEarly(options, settle, { reason: 'io_error', detail: err instanceof Error ? err.message : String(err), side: 'local' });
    return;
  }
  // Node's copies only: no shutdown, no reset; the pump's dups keep the connections.
  plain.destroy();
  wire.destroy();
}
