/**
 * Pipes: one direction of one stream.
 *
 * Each pipe reads from one socket, transforms, writes to the other, and
 * pauses its source whenever the destination's buffer is full, resuming on
 * 'drain'. So a slow reader never grows memory: per direction the jumper
 * holds at most one read chunk plus the destination's high-water mark.
 */
import type { Socket } from 'node:net';
import os from 'node:os';
import { PeerAbortError, PeerResetError, TruncatedError } from '../errors.js';
import { endedByReset } from '../native/peek.js';
import type { RecordOpener, RecordSealer, RecordSink } from './record.js';

export interface PipeHooks {
  /** Plaintext bytes moved by this pipe. */
  onBytes(count: number): void;
  /** This direction ended cleanly and everything was handed to the kernel. */
  onDone(): void;
  /** This direction failed; the connection must be torn down. */
  onError(err: unknown): void;
}

/** Reasons a peer may name in ABORT that we log as such; anything else is 'peer_abort' (peer_closed: what older jumpers sent for EPIPE). */
const KNOWN_ABORT_REASON = /^((provider|server|target)_(refused|timeout|unreachable)|peer_reset|peer_closed|drain_timeout|timeout|socket_error|error)$/;
/** A peer's errno-named reason (reasonOf lowercases the code): a closed set, this platform's errno names. */
const ERRNO_REASONS = new Set(Object.keys(os.constants.errno).map((name) => name.toLowerCase()));

/**
 * The error for a peer's ABORT. The reason is the peer's word, so only known
 * reasons become log/metric keys: a key holder must not be able to grow them.
 */
export function peerAbort(reason: string): Error {
  const known = KNOWN_ABORT_REASON.test(reason) || ERRNO_REASONS.has(reason) ? reason : 'peer_abort';
  return new PeerAbortError(`peer aborted the stream: ${reason}`, { reason: known });
}

/** Write buffers as one writev; returns false when the destination wants us to wait. */
function writeAll(dst: Socket, buffers: Buffer[]): boolean {
  let ok = true;
  if (buffers.length === 1) {
    ok = dst.write(buffers[0]!);
  } else {
    dst.cork();
    for (const b of buffers) ok = dst.write(b);
    dst.uncork();
  }
  buffers.length = 0;
  return ok;
}

/**
 * Run `fn` on the stream's 'end', or soon if it already ended: a paused
 * net.Socket still emits 'end' when EOF arrives on an empty buffer, which
 * can happen before a pipe is attached (e.g. while the provider is dialled).
 */
function onEnded(stream: Socket, fn: () => void): void {
  if (stream.readableEnded) process.nextTick(fn);
  else stream.once('end', fn);
}

/**
 * `fn` on the stream's clean EOF. A reset that libuv reported as EOF (it came
 * behind queued bytes; see endedByReset) goes to `hooks.onError` instead: a
 * peer's reset must never pass on as a clean end.
 */
export function onCleanEnd(stream: Socket, hooks: PipeHooks, fn: () => void): void {
  onEnded(stream, () => {
    if (endedByReset(stream)) hooks.onError(new PeerResetError('connection reset by peer'));
    else fn();
  });
}

/** Pause `src` until `dst` drains: the whole of the backpressure rule. */
export function waitForDrain(src: Socket, dst: Socket): void {
  src.pause();
  dst.once('drain', () => src.resume());
}

/** Plain bytes from `src` become records on `wire`; src's EOF becomes an END record. */
export function sealPipe(src: Socket, wire: Socket, sealer: RecordSealer, hooks: PipeHooks): void {
  const out: Buffer[] = [];
  src.on('data', (chunk: Buffer) => {
    hooks.onBytes(chunk.length);
    try {
      sealer.sealData(chunk, out);
    } catch (err) {
      hooks.onError(err);
      return;
    }
    if (!writeAll(wire, out)) waitForDrain(src, wire);
  });
  onCleanEnd(src, hooks, () => {
    sealer.sealEnd(out);
    writeAll(wire, out);
    wire.end();
  });
  wire.once('finish', () => hooks.onDone());
  src.resume();
}

/**
 * Records from `wire` become plain bytes on `dst`; the END record becomes
 * dst's EOF. A wire EOF without END is truncation, never a clean end.
 */
export function openPipe(wire: Socket, dst: Socket, opener: RecordOpener, hooks: PipeHooks, initial?: Buffer): void {
  let blocked = false;
  const sink: RecordSink = {
    onData(body) {
      if (body.length === 0) return;
      hooks.onBytes(body.length);
      if (!dst.write(body)) blocked = true;
    },
    onEnd() {
      dst.end();
    },
    onAbort(reason) {
      throw peerAbort(reason);
    },
  };
  /** Returns 'waiting' when dst is full and the wire was paused until it drains. */
  const feed = (chunk: Buffer): 'ok' | 'failed' | 'waiting' => {
    dst.cork();
    try {
      opener.push(chunk, sink);
    } catch (err) {
      dst.uncork();
      hooks.onError(err);
      return 'failed';
    }
    dst.uncork();
    if (!blocked) return 'ok';
    blocked = false;
    waitForDrain(wire, dst);
    return 'waiting';
  };
  onCleanEnd(wire, hooks, () => {
    if (!opener.ended) hooks.onError(new TruncatedError('stream cut without the authenticated end-of-stream record (truncated)'));
  });
  dst.once('finish', () => hooks.onDone());
  // Bytes that arrived with the handshake's last message come first.
  const first = initial && initial.length > 0 ? feed(initial) : 'ok';
  if (first === 'failed') return;
  wire.on('data', feed);
  if (first === 'ok') wire.resume();
}

/** Plain copy for forwarders: bytes and EOF pass through unchanged. */
export function plainPipe(src: Socket, dst: Socket, hooks: PipeHooks): void {
  src.on('data', (chunk: Buffer) => {
    hooks.onBytes(chunk.length);
    if (!dst.write(chunk)) waitForDrain(src, dst);
  });
  onCleanEnd(src, hooks, () => dst.end());
  dst.once('finish', () => hooks.onDone());
  src.resume();
}
