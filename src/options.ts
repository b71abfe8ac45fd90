import { InvalidArgumentError } from './errors.js';

/** A client's preconnect setting: a number of wires (0 = off) or 'auto'. */
export type PreconnectSetting = number | 'auto';

/** Wires 'auto' keeps ready: one covers a sequential stream rate (a second one measured no faster). */
export const AUTO_PRECONNECT_WIRES = 1;

/** The most wires a client may be told to keep ready (each holds a handshake slot on the server). */
export const MAX_PRECONNECT_WIRES = 1000;

/** 'auto' or a whole number of wires from 0 to MAX_PRECONNECT_WIRES: the one rule the CLI, the config and the API check. */
export function isPreconnectSetting(value: unknown): value is PreconnectSetting {
  return value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_PRECONNECT_WIRES);
}

/** A count that must be a whole number of at least 1 (a limit, a timeout in ms): returned, or InvalidArgumentError naming it. */
export function checkPositiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1, got ${String(value)}`);
  return value;
}

/** The largest busy-poll budget, in microseconds (keep in sync with the addon's kMaxBusyPollMicros): beyond it, polling is just a spinning core. */
export const MAX_BUSY_POLL_US = 10_000;

/** A whole number of microseconds from 0 to MAX_BUSY_POLL_US: the rule the CLI and the API check (the config schema's int kind checks the same bounds). */
export function isBusyPollSetting(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_BUSY_POLL_US;
}

/**
 * Longest duration any option takes, in ms: Node's timers hold at most
 * 2^31-1 ms and fire after 1 ms for anything longer, so a larger drain or
 * handshake timeout would silently become immediate. About 24.8 days.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * How long a wire that carried an ABORT is kept before it is destroyed
 * anyway: the ABORT flushes (JS path) or the peer's last bytes are read and
 * dropped (native pump), so a reset cannot overtake it.
 */
export const ABORT_LINGER_MS = 1_000;

/**
 * The least a timeout may be: 0 would fail every connection at once (a
 * timer of 0 fires before any peer can answer). Drain, idle-stop and
 * deregister-delay may be 0, which means "none".
 */
export const MIN_TIMEOUT_MS = 1;
/** The shortest health-check period: shorter is a connect storm against every backend. */
export const MIN_HEALTH_INTERVAL_MS = 100;
/** The shortest etcd lease: etcd keeps a lease alive at a third of its TTL. */
export const MIN_LEASE_TTL_MS = 2000;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** "5" (seconds), "5s", "250ms", "2m" → milliseconds; NaN when it is not a duration. The one grammar the CLI and the config file share. */
export function durationMs(text: string): number {
  const m = DURATION.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!) : NaN;
}

/** Milliseconds as a duration would be typed: "2s", "100ms". */
export function formatDurationMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Every default in one place. The CLI's --help shows these values.
 */
export const DEFAULTS = {
  /** Streams served at once; more wait, unread, until a slot frees. */
  maxConnections: 1000,
  /** Server: connections still proving the key; beyond it they wait unread like maxConnections. */
  maxHandshakes: 4096,
  /**
   * Client: wires being dialled and handshaken at once; further streams wait,
   * unread and untimed, for one to finish. Well below a server's accept
   * queue (backlog 4096): a burst that overflowed it would have SYNs and
   * hellos dropped and retried after 1, 3, 7 s, and the last ones would
   * run into the connect or handshake timeout.
   */
  clientMaxHandshakes: 256,
  /**
   * Client: wires kept dialled and handshaken ahead of demand. 'auto' keeps
   * one while streams come in a row (each within preconnectIdleMs of the
   * last) and none for a lone stream; 0 = off.
   */
  preconnect: 'auto' as PreconnectSetting,
  /** Client: a preconnected wire is retired after this long unused (below the server's handshakeTimeoutMs). */
  preconnectIdleMs: 2_000,
  /** Time to establish the outgoing TCP/Unix connection. */
  connectTimeoutMs: 5_000,
  /** Time from accept (server) or connect (client) until the peer proved the key and liveness. */
  handshakeTimeoutMs: 5_000,
  /** On SIGTERM/SIGINT, how long open streams may take to finish. */
  drainTimeoutMs: 30_000,
  /** TCP keep-alive on every socket the jumper keeps (not on one a forward hands off), so dead peers are noticed on idle streams. */
  keepAlive: true,
  /** Idle time before the first probe: this plus a random 0..spread, per socket, so probes do not come in storms. */
  keepAliveIdleSeconds: 30,
  keepAliveSpreadSeconds: 15,
  /** Unanswered probes, this far apart, before a peer is declared dead (needs the addon; else Node's 1 s x 10). */
  keepAliveIntervalSeconds: 5,
  keepAliveCount: 6,
  /** --start: how long connections wait for an on-demand provider to accept. */
  startTimeoutMs: 10_000,
  /** Microseconds a native reactor thread polls before sleeping (process-wide); 0 = sleep at once. */
  busyPollUs: 0,
  /** Kernel accept queue; large so a burst of connections waits rather than being refused. */
  backlog: 4096,
  /** Balancing: connect failures in a row that eject a backend from rotation. */
  ejectAfter: 3,
  /** Balancing: the first ejection's length; it doubles per ejection in a row. */
  ejectBaseMs: 1_000,
  /** Balancing: the longest ejection. */
  ejectMaxMs: 30_000,
  /** --register: etcd lease TTL; a crashed jumper's key disappears after it. */
  leaseTtlSeconds: 10,
  /** --register: on stop, how long to keep accepting after deregistering, so balancers see the removal first. */
  deregisterDelayMs: 1_000,
} as const;

export type Defaults = typeof DEFAULTS;
