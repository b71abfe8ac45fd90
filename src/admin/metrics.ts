/**
 * Prometheus metrics for every link of a process (prom-client).
 *
 * Counters are fed from each Jumper's events ('connection', 'close', 'dial');
 * gauges (open, waiting, backends) are read from the live jumpers at scrape
 * time. A link keeps its label across restarts: while an old instance
 * drains, both instances count toward the same series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CLEAN_END_REASONS } from '../errors.js';
import type { ConnSummary, Jumper } from '../roles/jumper.js';
import type { PreconnectOutcome, PreconnectStats } from '../roles/preconnect.js';
import { backendsOf, type BackendReport } from './backends.js';

export { backendsOf, type BackendReport } from './backends.js';

/** Reasons that mean the peer never completed the handshake. */
const HANDSHAKE_REASONS = new Set(['bad_magic', 'bad_version', 'bad_key', 'handshake_rejected', 'handshake_timeout', 'handshake_truncated']);
/** Is `reason` a handshake failure? */
export function isHandshakeFailure(reason: string): boolean {
  return HANDSHAKE_REASONS.has(reason);
}

/** Connect latency buckets, seconds: loopback (~0.1 ms) to a slow WAN. */
const CONNECT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface Attached {
  name: string;
  jumper: Jumper;
  detach(): void;
}

/** A client's preconnect counters, when it preconnects. */
function preconnectStatsOf(jumper: Jumper): PreconnectStats | undefined {
  const client = jumper as unknown as { preconnectStats?: () => PreconnectStats | undefined };
  return typeof client.preconnectStats === 'function' ? client.preconnectStats() : undefined;
}

export class JumperMetrics {
  readonly registry = new Registry();
  readonly #attached = new Set<Attached>();
  readonly #up = new Map<string, { role: string; up: boolean }>();
  readonly #total: Counter<'link' | 'role'>;
  readonly #bytes: Counter<'link' | 'role' | 'direction'>;
  readonly #failures: Counter<'link' | 'role' | 'reason'>;
  readonly #handshakeFailures: Counter<'link' | 'role' | 'reason'>;
  readonly #connectSeconds: Histogram<'link' | 'role'>;
  readonly #preconnect: Counter<'link' | 'role' | 'outcome'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.#total = new Counter({ name: 'jumper_connections_total', help: 'Connections accepted', labelNames: ['link', 'role'], registers });
    this.#bytes = new Counter({
      name: 'jumper_bytes_total',
      help: 'Plaintext bytes carried by closed connections; up = toward the provider, down = back to the consumer',
      labelNames: ['link', 'role', 'direction'],
      registers,
    });
    this.#failures = new Counter({
      name: 'jumper_connection_failures_total',
      help: 'Connections that ended other than cleanly, by reason (docs/PROTOCOL.md §6)',
      labelNames: ['link', 'role', 'reason'],
      registers,
    });
    this.#handshakeFailures = new Counter({
      name: 'jumper_handshake_failures_total',
      help: 'Connections whose handshake failed, by reason',
      labelNames: ['link', 'role', 'reason'],
      registers,
    });
    this.#connectSeconds = new Histogram({
      name: 'jumper_connect_duration_seconds',
      help: 'Time to open the outgoing connection (server jumper, provider, target or backend)',
      labelNames: ['link', 'role'],
      buckets: CONNECT_BUCKETS,
      registers,
    });
    this.#preconnect = new Counter({
      name: 'jumper_preconnect_total',
      help: 'Client --preconnect: streams that found a ready wire (hit) or not (miss), and wires that ended unused (retired, lost, failed)',
      labelNames: ['link', 'role', 'outcome'],
      registers,
    });
    const attached = this.#attached;
    const up = this.#up;
    const sumBy = (f: (j: Jumper) => number) => (g: Gauge<'link' | 'role'>) => {
      g.reset();
      const sums = new Map<string, { role: string; n: number }>();
      for (const a of attached) {
        const s = sums.get(a.name) ?? { role: a.jumper.role, n: 0 };
        s.n += f(a.jumper);
        sums.set(a.name, s);
      }
      for (const [link, s] of sums) g.set({ link, role: s.role }, s.n);
    };
    const openSum = sumBy((j) => j.stats().active);
    const waitingSum = sumBy((j) => j.stats().waiting);
    new Gauge({
      name: 'jumper_connections_open',
      help: 'Connections being served now (including draining instances)',
      labelNames: ['link', 'role'],
      registers,
      collect() {
        openSum(this);
      },
    });
    new Gauge({
      name: 'jumper_connections_waiting',
      help: 'Connections accepted but held over max-connections',
      labelNames: ['link', 'role'],
      registers,
      collect() {
        waitingSum(this);
      },
    });
    new Gauge({
      name: 'jumper_preconnect_ready',
      help: 'Client --preconnect: wires handshaken and ready now',
      labelNames: ['link', 'role'],
      registers,
      collect() {
        this.reset();
        for (const a of attached) {
          const stats = preconnectStatsOf(a.jumper);
          if (stats) this.inc({ link: a.name, role: a.jumper.role }, stats.ready);
        }
      },
    });
    new Gauge({
      name: 'jumper_link_up',
      help: '1 while the link is listening, 0 when it failed to start',
      labelNames: ['link', 'role'],
      registers,
      collect() {
        this.reset();
        for (const [link, s] of up) this.set({ link, role: s.role }, s.up ? 1 : 0);
      },
    });
    const backendSeries = (pick: (b: BackendReport) => number) =>
      function collect(this: Gauge<'link' | 'backend'>) {
        this.reset();
        for (const a of attached) for (const b of backendsOf(a.jumper)) this.inc({ link: a.name, backend: b.backend }, pick(b));
      };
    new Gauge({
      name: 'jumper_backend_up',
      help: 'Balancer backend health: 1 healthy, 0 ejected or failing health checks (draining backends are left out)',
      labelNames: ['link', 'backend'],
      registers,
      collect(this: Gauge<'link' | 'backend'>) {
        this.reset();
        // A link being replaced by a reload drains while its new instance runs:
        // one series per backend, healthy if either instance finds it so.
        const up = new Map<string, { link: string; backend: string; value: number }>();
        for (const a of attached) {
          for (const b of backendsOf(a.jumper)) {
            if (b.draining) continue;
            const key = `${a.name}\0${b.backend}`;
            const value = Math.max(up.get(key)?.value ?? 0, b.healthy ? 1 : 0);
            up.set(key, { link: a.name, backend: b.backend, value });
          }
        }
        for (const s of up.values()) this.set({ link: s.link, backend: s.backend }, s.value);
      },
    });
    new Gauge({
      name: 'jumper_backend_open_streams',
      help: 'Streams open to each balancer backend',
      labelNames: ['link', 'backend'],
      registers,
      collect: backendSeries((b) => b.active),
    });
  }

  /**
   * Count this jumper's connections under `link`.
   * @returns detach(): stop counting (call once the instance finished draining).
   */
  attach(link: string, jumper: Jumper): () => void {
    const role = jumper.role;
    const labels = { link, role };
    const onConnection = () => this.#total.inc(labels);
    const onClose = (s: ConnSummary) => {
      if (s.bytesUp > 0) this.#bytes.inc({ ...labels, direction: 'up' }, s.bytesUp);
      if (s.bytesDown > 0) this.#bytes.inc({ ...labels, direction: 'down' }, s.bytesDown);
      if (CLEAN_END_REASONS.has(s.reason)) return;
      this.#failures.inc({ ...labels, reason: s.reason });
      if (isHandshakeFailure(s.reason)) this.#handshakeFailures.inc({ ...labels, reason: s.reason });
    };
    const onDial = (d: { durationMs: number; error?: string }) => {
      if (d.error === undefined) this.#connectSeconds.observe(labels, d.durationMs / 1000);
    };
    const onPreconnect = (outcome: PreconnectOutcome) => this.#preconnect.inc({ ...labels, outcome });
    jumper.on('connection', onConnection);
    jumper.on('close', onClose);
    (jumper as unknown as NodeJS.EventEmitter).on('dial', onDial);
    jumper.on('preconnect', onPreconnect);
    // Series exist from the start, so a scrape shows 0 rather than nothing.
    this.#total.inc(labels, 0);
    this.#bytes.inc({ ...labels, direction: 'up' }, 0);
    this.#bytes.inc({ ...labels, direction: 'down' }, 0);
    this.#up.set(link, { role, up: true });
    const entry: Attached = {
      name: link,
      jumper,
      detach: () => {
        jumper.off('connection', onConnection);
        jumper.off('close', onClose);
        (jumper as unknown as NodeJS.EventEmitter).off('dial', onDial);
        jumper.off('preconnect', onPreconnect);
        this.#attached.delete(entry);
      },
    };
    this.#attached.add(entry);
    return entry.detach;
  }

  /** Mark a link up/down (down: configured but not listening). */
  setLinkUp(link: string, role: string, up: boolean): void {
    this.#up.set(link, { role, up });
  }

  /** Forget a removed link's up/down series (its counters stay, as Prometheus expects). */
  forgetLink(link: string): void {
    this.#up.delete(link);
  }

  /** The text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
