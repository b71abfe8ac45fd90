/**
 * Per-backend health of a balancing jumper, as /metrics and /status show it
 * (kept apart from the metrics so /status needs no prom-client).
 */
import type { Jumper } from '../roles/jumper.js';

/** What a balancer reports per backend. */
export interface BackendReport {
  backend: string;
  healthy: boolean;
  /** Removed from the configuration or discovery, finishing its open streams: neither healthy nor failing. */
  draining: boolean;
  active: number;
}

/** Per-backend health and open streams of a balancing jumper; empty for a single target. */
export function backendsOf(jumper: Jumper): BackendReport[] {
  return jumper.backends().map((b) => ({ backend: b.address, healthy: b.state === 'up', draining: b.state === 'draining', active: b.active }));
}
