/**
 * Every default in one place. The CLI's --help shows these values.
 */
export const DEFAULTS = {
  /** Streams served at once; more wait, unread, until a slot frees. */
  maxConnections: 1000,
  /** Time to establish the outgoing TCP/Unix connection. */
  connectTimeoutMs: 5_000,
  /** Time from accept (server) or connect (client) until the peer proved the key and liveness. */
  handshakeTimeoutMs: 5_000,
  /** On SIGTERM/SIGINT, how long open streams may take to finish. */
  drainTimeoutMs: 30_000,
  /** TCP keep-alive on every socket, so dead peers are noticed on idle streams. */
  keepAlive: true,
  keepAliveInitialDelayMs: 30_000,
  /** --start: how long connections wait for an on-demand provider to accept. */
  startTimeoutMs: 10_000,
  /** Kernel accept queue; large so a burst of connections waits rather than being refused. */
  backlog: 4096,
} as const;

export type Defaults = typeof DEFAULTS;
