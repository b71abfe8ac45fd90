/**
 * Preconnect (client jumper): keep a few wires to the server jumper dialled
 * and handshaken ahead of demand, so a new consumer connection skips the
 * connect, the handshake round trip and the X25519 agreement and sends its
 * ORIGIN record at once.
 *
 * - Forward secrecy and liveness are unchanged: every wire has its own
 *   ephemeral keys, and the server contacts the provider only after the
 *   ORIGIN record, which is sent when a consumer takes the wire.
 * - The server allows a wire --handshake-timeout to send its first record,
 *   so a ready wire is retired after `maxIdleMs` (keep it below the server's
 *   timeout): the client sends ABORT "unused" as its first record and the
 *   server ends it cleanly (reason `unused`, no provider dial, not a failure).
 * - Preconnecting follows demand: the pool is refilled while consumer
 *   connections came within the last `maxIdleMs`; an idle client lets its
 *   wires retire and holds none. With `sustainedOnly` (the client's default,
 *   `auto`) a lone stream fills nothing: only a stream that comes within
 *   `maxIdleMs` of the one before does, so a client that connects now and
 *   then never makes a wire it does not use.
 * - Balanced over several servers, a ready wire whose backend a new stream
 *   would not go to now (removed; down or ejected while another is up) is
 *   retired when a consumer would take it, so new streams follow the set.
 * - A failed preconnect (server down, wrong key) backs off, 100 ms doubling
 *   to 30 s; consumers meanwhile take the normal path and see its errors.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Dialer } from '../addr/dial.js';
import { leaseOf, takeLease } from '../balance/stream-lease.js';
import { HandshakeTimeoutError, reasonOf } from '../errors.js';
import type { TunnelKey } from '../keys/key-file.js';
import type { Logger } from '../log/logger.js';
import { peekSocket } from '../native/peek.js';
import { discardDialed, handshakeAsClient, type ReadyWire } from '../proto/conn.js';
import { startClientHandshake } from '../proto/handshake.js';
import { RecordSealer, UNUSED_ABORT_REASON } from '../proto/record.js';

export interface PreconnectOptions {
  /** Wires kept ready. */
  size: number;
  /** A ready wire is retired after this long unused; below the server's handshake timeout. */
  maxIdleMs: number;
  /** Fill only for a stream that came within maxIdleMs of the previous one (a steady rate), never for a lone one. */
  sustainedOnly?: boolean;
  /** Time allowed for one preconnect's handshake. */
  handshakeTimeoutMs: number;
  dial: Dialer;
  /** The key new wires use (it may be rotated). */
  key: () => TunnelKey;
  logger: Logger;
  /** Told of every take and every wire's end (metrics). */
  onOutcome?: (outcome: PreconnectOutcome) => void;
}

/** hit/miss: a consumer found a ready wire or not; retired/lost/failed: how a wire ended unused. */
export type PreconnectOutcome = 'hit' | 'miss' | 'retired' | 'lost' | 'failed';

/** Counters for status and tests. */
export interface PreconnectStats {
  /** Wires ready now. */
  ready: number;
  /** Consumer connections that took a ready wire. */
  hits: number;
  /** Consumer connections that found none and dialled. */
  misses: number;
  /** Wires retired unused (ABORT "unused"). */
  retired: number;
  /** Ready wires the server closed, or that misbehaved, before use. */
  lost: number;
  /** Preconnects that failed to dial or handshake. */
  failed: number;
}

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
/** How long a retired wire may take to flush its ABORT before it is destroyed anyway. */
const RETIRE_FLUSH_MS = 1_000;

interface Entry {
  ready: ReadyWire;
  timer: NodeJS.Timeout;
  onGone: () => void;
}

const ignore = (): void => {};

export class Preconnector {
  readonly #options: PreconnectOptions;
  #entries: Entry[] = [];
  #inFlight = 0;
  #lastDemand = Number.NEGATIVE_INFINITY;
  /** Whether demand asks for wires now; see sustainedOnly. */
  #demanded = false;
  #backoffMs = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #counts = { hits: 0, misses: 0, retired: 0, lost: 0, failed: 0 };

  constructor(options: PreconnectOptions) {
    this.#options = options;
  }

  #count(outcome: PreconnectOutcome): void {
    const key = outcome === 'hit' ? 'hits' : outcome === 'miss' ? 'misses' : outcome;
    this.#counts[key]++;
    this.#options.onOutcome?.(outcome);
  }

  stats(): PreconnectStats {
    return { ready: this.#entries.length, ...this.#counts };
  }

  /** Start filling ahead of the first consumer (e.g. right after listen). */
  warm(): void {
    this.#lastDemand = performance.now();
    this.#demanded = true;
    this.#fill();
  }

  /** A ready wire for a new consumer connection, if there is one; refills either way while demand asks for wires (see sustainedOnly). */
  take(): ReadyWire | undefined {
    const now = performance.now();
    this.#demanded = !this.#options.sustainedOnly || now - this.#lastDemand < this.#options.maxIdleMs;
    this.#lastDemand = now;
    const key = this.#options.key();
    let entry: Entry | undefined;
    while ((entry = this.#entries.shift()) !== undefined) {
      this.#detach(entry);
      const { wire } = entry.ready;
      // The kernel may know of the server's FIN or reset before the event loop does.
      const kernel = peekSocket(wire);
      // A wire to a backend that left the rotation since is retired: a fresh dial goes elsewhere.
      const stale = leaseOf(wire)?.stale?.() === true;
      if (entry.ready.key === key && !stale && !wire.destroyed && wire.writable && !wire.readableEnded && (kernel === undefined || kernel === 'open')) {
        this.#count('hit');
        this.#fill();
        return entry.ready;
      }
      if (kernel === 'open' || kernel === undefined) this.#retire(entry.ready);
      else this.#drop(entry.ready);
    }
    this.#count('miss');
    this.#fill();
    return undefined;
  }

  /** The key changed: wires made with the old one are retired. */
  keyChanged(): void {
    for (const entry of this.#entries.splice(0)) {
      this.#detach(entry);
      this.#retire(entry.ready);
    }
    this.#fill();
  }

  /** Retire every ready wire and make no more. */
  close(): void {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const entry of this.#entries.splice(0)) {
      this.#detach(entry);
      this.#retire(entry.ready);
    }
  }

  #wanted(): boolean {
    return !this.#closed && this.#demanded && this.#retryTimer === undefined && performance.now() - this.#lastDemand < this.#options.maxIdleMs;
  }

  #fill(): void {
    while (this.#wanted() && this.#entries.length + this.#inFlight < this.#options.size) {
      this.#inFlight++;
      void this.#makeOne();
    }
  }

  async #makeOne(): Promise<void> {
    const key = this.#options.key();
    let wire: Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const handshake = startClientHandshake(key);
      wire = await this.#options.dial();
      const dialled = wire;
      timer = setTimeout(() => dialled.destroy(new HandshakeTimeoutError('server jumper did not complete a preconnect handshake in time')), this.#options.handshakeTimeoutMs);
      const ready = await handshakeAsClient(wire, handshake, key);
      clearTimeout(timer);
      this.#inFlight--;
      this.#backoffMs = 0;
      if (this.#closed || key !== this.#options.key()) this.#retire(ready);
      else this.#park(ready);
    } catch (err) {
      clearTimeout(timer);
      this.#inFlight--;
      if (wire) {
        wire.on('error', ignore);
        discardDialed(wire);
      }
      this.#count('failed');
      this.#backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_FIRST_MS, this.#backoffMs * 2));
      this.#options.logger.debug({ reason: reasonOf(err), err: err instanceof Error ? err.message : String(err), retryMs: this.#backoffMs }, 'preconnect failed');
      if (!this.#closed && this.#retryTimer === undefined) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#fill();
        }, this.#backoffMs).unref();
      }
    }
  }

  /** Hold a ready wire, watching it: the server may close it, and it must not send anything. */
  #park(ready: ReadyWire): void {
    const { wire } = ready;
    const entry: Entry = {
      ready,
      timer: setTimeout(() => {
        this.#remove(entry);
        this.#retire(ready);
        this.#fill();
      }, this.#options.maxIdleMs).unref(),
      onGone: () => {
        this.#remove(entry);
        this.#drop(ready);
        this.#fill();
      },
    };
    wire.on('data', entry.onGone);
    wire.on('end', entry.onGone);
    wire.on('close', entry.onGone);
    wire.on('error', entry.onGone);
    wire.resume();
    this.#entries.push(entry);
  }

  #remove(entry: Entry): void {
    const i = this.#entries.indexOf(entry);
    if (i >= 0) this.#entries.splice(i, 1);
    this.#detach(entry);
  }

  #detach(entry: Entry): void {
    clearTimeout(entry.timer);
    const { wire } = entry.ready;
    wire.pause();
    wire.removeListener('data', entry.onGone);
    wire.removeListener('end', entry.onGone);
    wire.removeListener('close', entry.onGone);
    wire.removeListener('error', entry.onGone);
  }

  /** A wire the server closed (or that misbehaved): closed without a word. */
  #drop(ready: ReadyWire): void {
    this.#count('lost');
    ready.wire.on('error', ignore);
    discardDialed(ready.wire);
  }

  /** Tell the server this wire will carry nothing (ABORT "unused" as its first record), then close it. */
  #retire(ready: ReadyWire): void {
    const { wire } = ready;
    wire.on('error', ignore);
    takeLease(wire)?.release();
    this.#count('retired');
    if (wire.destroyed || !wire.writable) {
      wire.destroy();
      return;
    }
    const out: Buffer[] = [];
    new RecordSealer(ready.keys.sendKey).sealAbort(UNUSED_ABORT_REASON, out);
    wire.end(out.length === 1 ? out[0]! : Buffer.concat(out));
    wire.resume(); // read the server's close
    setTimeout(() => wire.destroy(), RETIRE_FLUSH_MS).unref();
  }
}
