/**
 * One place a balanced stream can go: an address, its weight, and the live
 * state the strategies and the ejection logic read.
 */
import type { Dialer } from '../addr/dial.js';
import { InvalidArgumentError } from '../errors.js';

/** What configuration or discovery says about a backend. */
export interface BackendSpec {
  /** host:port, [v6]:port or /path.sock. */
  address: string;
  /** Relative share of new streams; default 1. */
  weight: number;
}

/** A backend as /status and metrics report it. */
export interface BackendStatus {
  address: string;
  weight: number;
  /** Streams open now. */
  active: number;
  /** Streams ever sent there. */
  total: number;
  /** Connect failures ever. */
  failures: number;
  /** 'up', 'ejected' (passive, after failures), 'down' (failed health check), 'draining' (removed, streams still open). */
  state: 'up' | 'ejected' | 'down' | 'draining';
}

export class Backend {
  readonly address: string;
  weight: number;
  readonly dial: Dialer;
  active = 0;
  total = 0;
  failuresTotal = 0;
  /** Connect failures in a row; reset by a success. */
  consecutiveFailures = 0;
  /** Ejections in a row; the back-off doubles with each. */
  ejections = 0;
  /** performance.now() until which the backend gets no new streams. */
  ejectedUntil = 0;
  /** Result of the last active health check (true when checks are off). */
  healthy = true;
  /** No longer configured/discovered: no new streams, open ones finish. */
  removed = false;
  /** Smooth weighted round-robin state. */
  current = 0;

  constructor(spec: BackendSpec, dial: Dialer) {
    this.address = spec.address;
    this.weight = spec.weight;
    this.dial = dial;
  }

  /** May new streams go here at time `now`? */
  eligible(now: number): boolean {
    return !this.removed && this.healthy && now >= this.ejectedUntil;
  }

  status(now: number): BackendStatus {
    const state = this.removed ? 'draining' : !this.healthy ? 'down' : now < this.ejectedUntil ? 'ejected' : 'up';
    return { address: this.address, weight: this.weight, active: this.active, total: this.total, failures: this.failuresTotal, state };
  }
}

/** The largest weight accepted; keeps the round-robin arithmetic small. */
export const MAX_WEIGHT = 1000;

export function checkWeight(weight: number, where: string): number {
  if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
    throw new InvalidArgumentError(`${where}: weight must be an integer from 1 to ${MAX_WEIGHT}, got ${weight}`);
  }
  return weight;
}

/**
 * Parse a --backend value: `ADDR` or `ADDR,weight=W`
 * (e.g. `10.0.0.5:8025,weight=3`, `[::1]:8025`, `/run/a.sock,weight=2`).
 */
export function parseBackendSpec(text: string): BackendSpec {
  const [address, ...params] = text.split(',');
  if (!address) throw new InvalidArgumentError(`backend "${text}": missing address`);
  let weight = 1;
  for (const param of params) {
    const match = /^weight=(\d+)$/.exec(param.trim());
    if (!match) throw new InvalidArgumentError(`backend "${text}": unknown parameter "${param}" (expected weight=N)`);
    weight = checkWeight(Number(match[1]), `backend "${text}"`);
  }
  return { address: address.trim(), weight };
}
