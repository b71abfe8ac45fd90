/**
 * A tunnelled connection: ties the accepted socket, the outgoing socket, the
 * handshake and the two pipes together, and ends them together.
 * (The plain forwarder uses the same lifecycle with two plain pipes.)
 *
 * Client side:  consumer --plain--> [client] --records--> server jumper
 * Server side:  client jumper --records--> [server] --plain--> provider
 *
 * A connection ends cleanly when both directions delivered their END; any
 * failure tears down both sockets at once with a TCP reset, so a consumer or
 * provider never mistakes a broken stream for a clean EOF (Unix sockets have
 * no reset: there the plain peer sees a close); when the failure
 * is not the tunnel peer's own, that peer first gets an authenticated ABORT
 * record naming the reason, so both ends log the same cause.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Dialer } from '../addr/dial.js';
import { withSlot, type Slots } from '../addr/slots.js';
import { takeLease, type StreamLease } from '../balance/stream-lease.js';
import {
  AuthError,
  BadRecordError,
  HandshakeTimeoutError,
  HandshakeTruncatedError,
  NoDataError,
  TamperedError,
  TruncatedError,
  UnusedTunnelError,
  reasonOf,
} from '../errors.js';
import { nativePumpAvailable, runNativePump, type NativePump, type PumpResult, type RunNativePumpOptions } from '../native/pump.js';
import { nativeSpliceAvailable, runNativeSplice, type NativeSplice } from '../native/splice.js';
import { resetSocket } from '../native/handover.js';
import { peekSocket } from '../native/peek.js';
import type { TunnelKey } from '../keys/key-file.js';
import {
  CLIENT_HELLO_BYTES,
  HEADER_BYTES,
  SERVER_HELLO_BYTES,
  checkHeader,
  respondToClientHello,
  startClientHandshake,
  type ClientHandshake,
} from './handshake.js';
import { mustStayInJs } from './js-data-path.js';
import { openPipe, peerAbort, plainPipe, sealPipe, type PipeHooks } from './pipe.js';
import { RecordOpener, RecordSealer, UNUSED_ABORT_REASON, type RecordSink } from './record.js';
import { originBody, proxyHeaderFromOrigin } from './origin.js';
import { decodeAddressBlock, type ProxyVersion } from './proxy-header.js';
import type { TransportKeys } from './noise.js';
import { ABORT_LINGER_MS } from '../options.js';

/** How a connection ended; logged as one line and emitted as 'close'. */
export interface ConnSummary {
  id: number;
  /** The accepted peer's address. */
  peer: string;
  /** Plaintext bytes from the accepting side toward the target. */
  bytesUp: number;
  /** Plaintext bytes from the target back to the accepting side. */
  bytesDown: number;
  durationMs: number;
  /** 'done' for a clean end, else a reason code such as 'bad_key' or 'tampered'. */
  reason: string;
  error?: Error;
  /** Fingerprint of the key the peer authenticated with (tunnel roles). */
  keyFingerprint?: string;
  /** The backend the stream went to, when balancing. */
  target?: string;
}

export interface ConnTimeouts {
  handshakeTimeoutMs: number;
}

const EMPTY = Buffer.alloc(0);

function peerOf(socket: Socket): string {
  if (socket.remoteAddress) return `${socket.remoteAddress}:${socket.remotePort}`;
  return 'unix';
}

function reset(socket: Socket | undefined): void {
  if (socket) resetSocket(socket);
}

/** The typed error for a pump that ended abnormally. */
function pumpError(result: PumpResult): Error {
  const detail = result.detail ?? result.reason;
  switch (result.reason) {
    case 'tampered':
      return new TamperedError(detail);
    case 'truncated':
      return new TruncatedError(detail);
    case 'bad_record':
      return new BadRecordError(detail);
    case 'peer_abort':
      return peerAbort(detail);
    default:
      // peer_reset / io_error carry the errno name: reasonOf maps it.
      return Object.assign(new Error(`${result.reason}: ${detail}`), { code: result.detail });
  }
}

/**
 * Start the native pump when it is available and the sockets qualify;
 * undefined means: use the JS pipes.
 */
function tryNativePump(options: RunNativePumpOptions): NativePump | undefined {
  if (!nativePumpAvailable() || mustStayInJs(options.plain) || mustStayInJs(options.wire)) return undefined;
  try {
    return runNativePump(options);
  } catch {
    return undefined; // e.g. not both sockets (an exec: pipe): the JS path works for everything
  }
}

/** Close a freshly dialled socket the connection will not use (it ended meanwhile). */
export function discardDialed(socket: Socket): void {
  takeLease(socket)?.release();
  socket.destroy();
}

/** Lifecycle shared by every role: two sockets, two directions, one end. */
export class Conn {
  readonly id: number;
  readonly peer: string;
  bytesUp = 0;
  bytesDown = 0;
  keyFingerprint: string | undefined;
  readonly #started = performance.now();
  readonly #onClose: (summary: ConnSummary) => void;
  #plain: Socket | undefined;
  #wire: Socket | undefined;
  #sealer: RecordSealer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #directionsDone = 0;
  #closed = false;
  /** When the native pump carries the stream, it owns both sockets. */
  #pump: NativePump | undefined;
  #pumpFailure: Error | undefined;
  /** The dialer's count of this stream (balanced dial, on-demand provider), released when the stream ends. */
  #lease: StreamLease | undefined;

  constructor(id: number, accepted: Socket, onClose: (summary: ConnSummary) => void) {
    this.id = id;
    this.peer = peerOf(accepted);
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The socket carrying plaintext (consumer or provider). */
  adoptPlain(socket: Socket): void {
    this.#plain = socket;
    this.#lease ??= takeLease(socket);
    socket.on('error', (err) => this.fail(err, 'plain'));
  }

  /**
   * The socket carrying records (the other jumper). With `watchErrors`
   * false the caller handles its errors for now (the client's handshake
   * turns a reset into 'handshake_rejected') and calls watchWire() later.
   */
  adoptWire(socket: Socket, watchErrors = true): void {
    this.#wire = socket;
    this.#lease ??= takeLease(socket);
    if (watchErrors) this.watchWire();
  }

  watchWire(): void {
    this.#wire?.on('error', (err) => this.fail(err, 'wire'));
  }

  /** Once set, failures on the plain side are reported to the peer in an ABORT record. */
  setSealer(sealer: RecordSealer): void {
    this.#sealer = sealer;
  }

  armTimer(ms: number, makeError: () => Error): void {
    this.disarmTimer();
    this.#timer = setTimeout(() => this.fail(makeError(), 'local'), ms);
  }

  disarmTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Hooks for one direction's pipe. */
  hooks(direction: 'up' | 'down', side: 'plain' | 'wire'): PipeHooks {
    return {
      onBytes: direction === 'up' ? (n) => (this.bytesUp += n) : (n) => (this.bytesDown += n),
      onDone: () => this.#directionDone(),
      onError: (err) => this.fail(err, side),
    };
  }

  /**
   * Let the native pump carry the stream from here on. `plainIsConsumer`:
   * true on the client (plain→wire is "up"), false on the server.
   */
  adoptPump(pump: NativePump, plainIsConsumer: boolean): void {
    this.#pump = pump;
    // The pump owns the fds now: let the destroyed JS sockets and the sealer
    // be collected while the stream is held (memory per idle stream).
    this.#plain = undefined;
    this.#wire = undefined;
    this.#sealer = undefined;
    void pump.done.then((result) => {
      this.bytesUp += plainIsConsumer ? result.bytesUp : result.bytesDown;
      this.bytesDown += plainIsConsumer ? result.bytesDown : result.bytesUp;
      if (this.#closed) return;
      this.#closed = true;
      this.disarmTimer();
      if (result.reason === 'done') this.#emit('done');
      else {
        const error = this.#pumpFailure ?? pumpError(result);
        this.#emit(reasonOf(error), error);
      }
    });
  }

  /**
   * The accepted socket was handed to another process: drop our copy
   * without a FIN or reset (the receiver's copy keeps the connection).
   */
  handedOff(socket: Socket): void {
    if (this.#closed) return;
    this.#closed = true;
    this.disarmTimer();
    socket.destroy();
    this.#emit('handed_off');
  }

  #directionDone(): void {
    if (++this.#directionsDone < 2 || this.#closed) return;
    this.#closed = true;
    this.disarmTimer();
    this.#plain?.destroy();
    this.#wire?.destroy();
    this.#emit('done');
  }

  /**
   * Tear down both sockets. `side` says where the failure came from: a
   * failure on the plain side (or a local one) is told to the tunnel peer.
   */
  fail(err: unknown, side: 'plain' | 'wire' | 'local'): void {
    if (this.#closed) return;
    if (this.#pump) {
      // The pump owns the sockets: it sends the ABORT and resets the plain side.
      this.#pumpFailure ??= err instanceof Error ? err : new Error(String(err));
      this.#pump.cancel(reasonOf(err));
      return;
    }
    this.#closed = true;
    this.disarmTimer();
    const error = err instanceof Error ? err : new Error(String(err));
    const reason = reasonOf(err);
    reset(this.#plain);
    const wire = this.#wire;
    if (wire && !wire.destroyed && side !== 'wire' && this.#sealer && wire.writable) {
      // Tell the tunnel peer why, authenticated, then close.
      const out: Buffer[] = [];
      this.#sealer.sealAbort(reason, out);
      for (const b of out) wire.write(b);
      wire.end();
      // Out of time with the ABORT unsent: a reset, not a FIN after part of a record (read as truncation).
      setTimeout(() => (wire.writableFinished ? wire.destroy() : reset(wire)), ABORT_LINGER_MS).unref();
    } else {
      reset(wire);
    }
    this.#emit(reason, error);
  }

  #emit(reason: string, error?: Error): void {
    const summary: ConnSummary = {
      id: this.id,
      peer: this.peer,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Math.round(performance.now() - this.#started),
      reason,
    };
    if (error) summary.error = error;
    if (this.keyFingerprint) summary.keyFingerprint = this.keyFingerprint;
    if (this.#lease) {
      if (this.#lease.target !== undefined) summary.target = this.#lease.target;
      this.#lease.release();
    }
    this.#onClose(summary);
  }
}

/**
 * Read exactly `length` bytes from a paused socket; return them and any
 * bytes that came after. `onPrefix` sees the first `prefixLength` bytes as
 * soon as they arrive (garbage is refused without waiting for the rest).
 */
function readExactly(
  socket: Socket,
  length: number,
  onPrefix?: { length: number; check(prefix: Buffer): void },
): Promise<{ data: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let prefixChecked = !onPrefix;
    const cleanup = () => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (!prefixChecked && received >= onPrefix!.length) {
        prefixChecked = true;
        try {
          onPrefix!.check(Buffer.concat(chunks, received).subarray(0, onPrefix!.length));
        } catch (err) {
          cleanup();
          socket.pause();
          reject(err);
          return;
        }
      }
      if (received < length) return;
      cleanup();
      socket.pause();
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      resolve({ data: all.subarray(0, length), rest: all.subarray(length) });
    };
    // A peer that sent nothing at all (a TCP health check, a port probe) did not fail a handshake.
    const onEnd = () => {
      cleanup();
      if (received === 0) reject(new NoDataError('peer closed the connection without sending anything'));
      else reject(new HandshakeTruncatedError(`peer closed the connection during the handshake after ${received} of ${length} bytes`));
    };
    const onClose = () => {
      cleanup();
      if (received === 0) reject(new NoDataError('connection closed or reset before any byte arrived'));
      else reject(new HandshakeTruncatedError('connection closed during the handshake'));
    };
    if (socket.readableEnded || socket.destroyed) {
      onEnd();
      return;
    }
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume();
  });
}

/**
 * The client-side prelude every protocol shares, once the consumer is
 * adopted: dial the server, and give up quietly if the consumer left
 * meanwhile. The wire's errors stay with the caller's handshake until it
 * calls conn.watchWire().
 * @returns the wire socket, or undefined when the connection is already over.
 */
export async function dialForClient(conn: Conn, dial: Dialer): Promise<Socket | undefined> {
  if (conn.closed) return undefined; // the consumer left while its stream waited for a handshake slot
  const wire = await dial();
  if (conn.closed) {
    discardDialed(wire);
    return undefined;
  }
  conn.adoptWire(wire, false);
  return wire;
}

/** A wire whose handshake is done but which carries no stream yet (preconnected, or just dialled). */
export interface ReadyWire {
  readonly wire: Socket;
  readonly keys: TransportKeys;
  /** Wire bytes that came after the server hello (none from a jumper/1 server). */
  readonly rest: Buffer;
  /** The key the handshake used. */
  readonly key: TunnelKey;
}

/**
 * Send the client hello on a connected wire and read the server's reply.
 * The caller bounds the time (the server may never answer).
 * @throws AuthError: reason handshake_rejected when the server closes
 *   instead of answering (it does so silently on a wrong key or version),
 *   bad_key when its reply does not authenticate.
 */
export async function handshakeAsClient(wire: Socket, handshake: ClientHandshake, key: TunnelKey): Promise<ReadyWire> {
  wire.write(handshake.hello);
  let reply: { data: Buffer; rest: Buffer };
  try {
    reply = await readExactly(wire, SERVER_HELLO_BYTES);
  } catch (err) {
    if (err instanceof HandshakeTruncatedError || err instanceof NoDataError) {
      throw new AuthError('server jumper closed the connection during the handshake: wrong key or protocol version?', {
        cause: err,
        reason: 'handshake_rejected',
      });
    }
    throw err;
  }
  return { wire, keys: handshake.finish(reply.data), rest: reply.rest, key };
}

export interface ClientConnOptions extends ConnTimeouts {
  key: TunnelKey;
  dial: Dialer;
  /** A wire that finished its handshake ahead of time (src/roles/preconnect.ts), if one is ready. */
  takeReady?: () => ReadyWire | undefined;
  /** Bounds the client's dials and handshakes in flight; a stream waits (unread, untimed) for a slot. */
  handshakeSlots?: Slots;
}

/**
 * Serve one consumer connection as a client jumper: dial the server jumper
 * and handshake (or take a preconnected wire), prove liveness, then pump
 * both ways.
 */
export async function runClientConn(conn: Conn, local: Socket, options: ClientConnOptions): Promise<void> {
  try {
    // Adopted first, so that fail() closes it: a paused socket nobody reads is never closed otherwise.
    conn.adoptPlain(local);
    if (consumerGone(local)) {
      // A health check that reset at once: no dial, no ready wire spent on it, and the provider never sees it.
      conn.fail(new NoDataError('consumer reset the connection before any byte arrived'), 'plain');
      return;
    }
    let ready = options.takeReady?.();
    if (ready) conn.adoptWire(ready.wire);
    else ready = await withSlot(options.handshakeSlots, () => handshakeNewWire(conn, options));
    if (!ready) return;
    startClientStream(conn, local, ready);
  } catch (err) {
    // Handshake and dial failures: no sealer yet, so nothing is told to the server.
    conn.fail(err, 'wire');
  }
}

/** Dial the server and handshake on the new wire; undefined when the connection ended meanwhile. */
async function handshakeNewWire(conn: Conn, options: ClientConnOptions): Promise<ReadyWire | undefined> {
  const dialing = dialForClient(conn, options.dial);
  // The hello needs nothing from the server: make it while the connect is in flight.
  const handshake = startClientHandshake(options.key);
  const wire = await dialing;
  if (!wire) return undefined;
  conn.armTimer(options.handshakeTimeoutMs, () => new HandshakeTimeoutError('server jumper did not complete the handshake in time'));
  const ready = await handshakeAsClient(wire, handshake, options.key);
  if (conn.closed) return undefined;
  conn.watchWire();
  conn.disarmTimer();
  return ready;
}

/** Whether the kernel already holds a reset for the consumer's socket (a FIN may still want a reply: not gone). */
function consumerGone(local: Socket): boolean {
  const state = peekSocket(local);
  return state !== undefined && state !== 'open' && state !== 'data' && state !== 'eof';
}

/** Prove liveness with the ORIGIN record, then let the pump (or the JS pipes) carry the stream. */
function startClientStream(conn: Conn, local: Socket, ready: ReadyWire): void {
  const { wire, keys } = ready;
  conn.keyFingerprint = ready.key.fingerprint;
  const sealer = new RecordSealer(keys.sendKey);
  const opener = new RecordOpener(keys.recvKey);
  conn.setSealer(sealer);
  // Liveness proof first (the ORIGIN record): the server contacts the provider only after it.
  const out: Buffer[] = [];
  sealer.sealOrigin(originBody(local), out);
  // One write: a record split over two segments costs the server a second wake-up.
  const origin = out.length === 1 ? out[0]! : Buffer.concat(out);
  // The native pump sends it, in one segment with the consumer's first
  // bytes when they are already here (one send, one server wake-up fewer).
  const pump = tryNativePump({ plain: local, wire, sendKey: keys.sendKey, recvKey: keys.recvKey, sendCounter: sealer.count, recvCounter: opener.count, sealedPending: origin, wirePending: ready.rest });
  if (pump) {
    conn.adoptPump(pump, true);
    return;
  }
  wire.write(origin);
  openPipe(wire, local, opener, conn.hooks('down', 'wire'), ready.rest);
  sealPipe(local, wire, sealer, conn.hooks('up', 'plain'));
}

export interface ServerConnOptions extends ConnTimeouts {
  /** Accepted keys, tried in order (several during a rotation). */
  keys: readonly TunnelKey[];
  dial: Dialer;
  /** Write a PROXY header with the client's ORIGIN to the provider before any data. */
  proxyProtocol?: ProxyVersion;
  /** Called once the client proved key and liveness: may wait for a stream slot. */
  admit?: () => Promise<void>;
}

/** Buffer what arrives before the provider is connected: at most one read chunk. */
class EarlyRecords implements RecordSink {
  bodies: Buffer[] = [];
  records = 0;
  ended = false;
  /** The client's ORIGIN body (undefined from a client that sent an empty DATA). */
  origin: Buffer | undefined;
  onData(body: Buffer): void {
    this.records++;
    if (body.length > 0) this.bodies.push(body);
  }
  onOrigin(body: Buffer): void {
    decodeAddressBlock(body); // a malformed ORIGIN is a bad_record, before the provider is dialled
    this.records++;
    this.origin = body;
  }
  onEnd(): void {
    this.records++;
    this.ended = true;
  }
  onAbort(reason: string): void {
    // A preconnected wire the client did not need (src/roles/preconnect.ts): a clean end.
    if (this.records === 0 && reason === UNUSED_ABORT_REASON) {
      throw new UnusedTunnelError('client jumper retired a preconnected tunnel unused');
    }
    throw peerAbort(reason);
  }
}

/** Wait for the client's first authenticated record: its proof of liveness. */
function awaitFirstRecord(wire: Socket, opener: RecordOpener, rest: Buffer): Promise<EarlyRecords> {
  const early = new EarlyRecords();
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      wire.removeListener('data', onData);
      wire.removeListener('end', onEnd);
      wire.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer): boolean => {
      try {
        opener.push(chunk, early);
      } catch (err) {
        cleanup();
        reject(err);
        return true;
      }
      if (early.records === 0) return false;
      cleanup();
      wire.pause();
      resolve(early);
      return true;
    };
    const onEnd = () => {
      cleanup();
      reject(new HandshakeTruncatedError('client jumper closed the connection before proving liveness'));
    };
    const onClose = () => {
      cleanup();
      reject(new HandshakeTruncatedError('connection closed before the client proved liveness'));
    };
    if (rest.length > 0 && onData(rest)) return;
    if (wire.readableEnded || wire.destroyed) {
      onEnd();
      return;
    }
    wire.on('data', onData);
    wire.once('end', onEnd);
    wire.once('close', onClose);
    wire.resume();
  });
}

/**
 * Serve one connection as a server jumper: authenticate the client, wait for
 * its liveness proof, and only then dial the provider and pump both ways.
 */
export async function runServerConn(conn: Conn, wire: Socket, options: ServerConnOptions): Promise<void> {
  conn.adoptWire(wire, false);
  // A reset before any byte (a health check that closes with RST) is not a failure either.
  wire.on('error', (err) => conn.fail(wire.bytesRead === 0 ? new NoDataError('connection reset before any byte arrived', { cause: err }) : err, 'wire'));
  conn.armTimer(options.handshakeTimeoutMs, () => new HandshakeTimeoutError('client did not complete the handshake in time'));
  try {
    const hello = await readExactly(wire, CLIENT_HELLO_BYTES, { length: HEADER_BYTES, check: checkHeader });
    if (conn.closed) return;
    const result = respondToClientHello(options.keys, hello.data);
    wire.write(result.reply);
    const sealer = new RecordSealer(result.keys.sendKey);
    const opener = new RecordOpener(result.keys.recvKey);
    const early = await awaitFirstRecord(wire, opener, hello.rest);
    if (conn.closed) return;
    conn.disarmTimer();
    conn.keyFingerprint = result.key.fingerprint;
    conn.setSealer(sealer);
    const proxyHeader = options.proxyProtocol ? proxyHeaderFromOrigin(options.proxyProtocol, early.origin) : undefined;
    if (options.admit) {
      await options.admit();
      if (conn.closed) return;
    }
    const provider = await options.dial();
    if (conn.closed) {
      discardDialed(provider);
      return;
    }
    conn.adoptPlain(provider);
    if (proxyHeader) provider.write(proxyHeader); // before any stream byte, JS or native path
    // A partial record may sit in the opener: it goes to whichever path carries on.
    const pendingWire = opener.takePending();
    const pump = tryNativePump({
      plain: provider,
      wire,
      sendKey: result.keys.sendKey,
      recvKey: result.keys.recvKey,
      sendCounter: sealer.count,
      recvCounter: opener.count,
      wirePending: pendingWire,
      openedPending: Buffer.concat(early.bodies),
      recvEnded: early.ended,
    });
    if (pump) {
      conn.adoptPump(pump, false);
      return;
    }
    const upHooks = conn.hooks('up', 'wire');
    for (const body of early.bodies) {
      upHooks.onBytes(body.length);
      provider.write(body);
    }
    if (early.ended) provider.end();
    openPipe(wire, provider, opener, upHooks, pendingWire);
    sealPipe(provider, wire, sealer, conn.hooks('down', 'plain'));
  } catch (err) {
    // Before setSealer (handshake failures) nothing is sent back; after it
    // (provider dial failures) the client jumper gets an ABORT with the reason.
    conn.fail(err, 'local');
  }
}

export interface ForwardConnOptions {
  dial: Dialer;
}

/** Plain forwarding: no key, bytes and half-close pass through. */
export async function runForwardConn(conn: Conn, local: Socket, options: ForwardConnOptions): Promise<void> {
  conn.adoptPlain(local);
  try {
    const remote = await options.dial();
    if (conn.closed) {
      discardDialed(remote);
      return;
    }
    conn.adoptWire(remote);
    // splice(2) in native code when possible; the JS pipes otherwise.
    if (nativeSpliceAvailable() && !mustStayInJs(local) && !mustStayInJs(remote)) {
      let splice: NativeSplice | undefined;
      try {
        splice = runNativeSplice(local, remote);
      } catch {
        // e.g. a pipe-backed socket: the JS pipes carry everything
      }
      if (splice) {
        conn.adoptPump(splice, true);
        return;
      }
    }
    plainPipe(remote, local, conn.hooks('down', 'wire'));
    plainPipe(local, remote, conn.hooks('up', 'plain'));
  } catch (err) {
    conn.fail(err, 'local');
  }
}
