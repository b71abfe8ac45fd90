/**
 * The set of backends a balancer or a balancing client sends streams to:
 * membership (from flags or discovery), the pick, and passive ejection.
 *
 * A backend that fails `ejectAfter` connects in a row gets no new streams
 * for a back-off that doubles with each ejection in a row (capped); the
 * first success resets it. A removed backend keeps its open streams and
 * disappears when the last one ends.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Dialer } from '../addr/dial.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { InvalidArgumentError, reasonOf } from '../errors.js';
import { Backend, checkWeight, type BackendSpec, type BackendStatus } from './backend.js';
import { createStrategy, type Strategy, type StrategyName } from './strategy.js';
import type { StreamLease } from './stream-lease.js';

/** A backend as callers give it: the weight defaults to 1. */
export interface BackendInput {
  address: string;
  weight?: number;
}

export interface PoolOptions {
  strategy: StrategyName;
  /** Connect failures in a row that eject a backend. */
  ejectAfter: number;
  /** First ejection's length; doubles per ejection in a row. */
  ejectBaseMs: number;
  ejectMaxMs: number;
  /** Makes the dialer for one backend address. */
  makeDialer(address: string): Dialer;
  logger?: Logger;
  random?: () => number;
}

export interface PoolEvents {
  /** Membership changed (added, removed, weight). */
  change: [];
}

export class BackendPool extends EventEmitter<PoolEvents> {
  readonly strategyName: StrategyName;
  readonly #strategy: Strategy;
  readonly #options: PoolOptions;
  readonly #logger: Logger;
  readonly #backends = new Map<string, Backend>();
  /** Reused per pick: no allocation on the connection path. */
  readonly #scratch: Backend[] = [];

  constructor(options: PoolOptions) {
    super();
    this.#options = options;
    this.strategyName = options.strategy;
    this.#strategy = createStrategy(options.strategy, options.random);
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * Replace the configured set: new ones start taking streams, missing ones drain.
   * Every spec is checked first (weight 1..MAX_WEIGHT, 1 when left out; an
   * address a dialer can be made for): a bad one changes nothing.
   * @throws InvalidArgumentError
   */
  update(specs: readonly BackendInput[]): void {
    const wanted = new Map<string, BackendSpec>();
    const dialers = new Map<string, Dialer>();
    for (const s of specs) {
      if (typeof s?.address !== 'string' || s.address === '') throw new InvalidArgumentError('backend: address must be a non-empty string');
      const weight = checkWeight(s.weight ?? 1, `backend "${s.address}"`);
      wanted.set(s.address, { address: s.address, weight });
      if (!this.#backends.has(s.address) && !dialers.has(s.address)) dialers.set(s.address, this.#options.makeDialer(s.address));
    }
    let changed = false;
    for (const [address, backend] of this.#backends) {
      if (wanted.has(address) || backend.removed) continue;
      backend.removed = true;
      changed = true;
      this.#logger.info({ backend: address, openStreams: backend.active }, 'backend removed: no new streams, open ones finish');
      this.#forgetIfIdle(backend);
    }
    for (const spec of wanted.values()) {
      const existing = this.#backends.get(spec.address);
      if (existing) {
        if (existing.removed || existing.weight !== spec.weight) changed = true;
        if (existing.removed) this.#logger.info({ backend: spec.address }, 'backend added back');
        existing.removed = false;
        existing.weight = spec.weight;
        continue;
      }
      this.#backends.set(spec.address, new Backend(spec, dialers.get(spec.address)!));
      this.#logger.info({ backend: spec.address, weight: spec.weight }, 'backend added');
      changed = true;
    }
    if (changed) {
      // A membership change restarts the round-robin cycle evenly.
      for (const b of this.#backends.values()) b.current = 0;
      this.emit('change');
    }
  }

  /** Backends that are configured (not draining). */
  get size(): number {
    let n = 0;
    for (const b of this.#backends.values()) if (!b.removed) n++;
    return n;
  }

  /**
   * The next backend for a new stream, skipping `tried`. When every
   * configured backend is ejected or down, they are tried anyway: a
   * possibly-failing backend beats refusing the stream outright.
   */
  pick(tried: ReadonlySet<Backend>): Backend | undefined {
    const now = performance.now();
    const candidates = this.#scratch;
    candidates.length = 0;
    for (const b of this.#backends.values()) if (b.eligible(now) && !tried.has(b)) candidates.push(b);
    if (candidates.length === 0) {
      for (const b of this.#backends.values()) if (!b.removed && !tried.has(b)) candidates.push(b);
    }
    const chosen = candidates.length > 0 ? this.#strategy(candidates) : undefined;
    candidates.length = 0;
    return chosen;
  }

  /** Whether pick() would pass `backend` over now (the rule a preconnected wire follows). */
  #wouldSkip(backend: Backend): boolean {
    if (backend.removed) return true;
    const now = performance.now();
    if (backend.eligible(now)) return false;
    // Ejected or down: skipped only while another backend is eligible (pick's fallback).
    for (const b of this.#backends.values()) if (b.eligible(now)) return true;
    return false;
  }

  /** A connect to `backend` succeeded: the stream is counted until the lease is released. */
  connected(backend: Backend): StreamLease {
    if (backend.ejections > 0) this.#logger.info({ backend: backend.address }, 'backend recovered');
    backend.consecutiveFailures = 0;
    backend.ejections = 0;
    backend.ejectedUntil = 0;
    backend.active++;
    backend.total++;
    let released = false;
    return {
      target: backend.address,
      stale: () => this.#wouldSkip(backend),
      release: () => {
        if (released) return;
        released = true;
        backend.active--;
        this.#forgetIfIdle(backend);
      },
    };
  }

  /** A connect to `backend` failed. */
  failed(backend: Backend, err: unknown): void {
    backend.failuresTotal++;
    // Already ejected: these are dials that were under way (or pick's
    // fallback when every backend is out). Counting them would eject again
    // and again, pushing the back-off to its cap and beyond at once.
    if (performance.now() < backend.ejectedUntil) return;
    if (++backend.consecutiveFailures < this.#options.ejectAfter) return;
    backend.consecutiveFailures = 0;
    const ms = Math.min(this.#options.ejectBaseMs * 2 ** backend.ejections, this.#options.ejectMaxMs);
    backend.ejections++;
    backend.ejectedUntil = performance.now() + ms;
    this.#logger.warn({ backend: backend.address, reason: reasonOf(err), ejectedForMs: ms }, 'backend ejected after failed connects');
  }

  /** Active health check result. */
  setHealth(backend: Backend, healthy: boolean, err?: unknown): void {
    if (backend.healthy === healthy) return;
    backend.healthy = healthy;
    if (healthy) this.#logger.info({ backend: backend.address }, 'health check passed: backend up');
    else this.#logger.warn({ backend: backend.address, reason: reasonOf(err) }, 'health check failed: backend down');
  }

  /** Backends that are configured (for health checks). */
  configured(): Backend[] {
    return [...this.#backends.values()].filter((b) => !b.removed);
  }

  status(): BackendStatus[] {
    const now = performance.now();
    return [...this.#backends.values()].map((b) => b.status(now));
  }

  #forgetIfIdle(backend: Backend): void {
    if (backend.removed && backend.active === 0 && this.#backends.get(backend.address) === backend) {
      this.#backends.delete(backend.address);
    }
  }
}
