/**
 * What every role shares: listening with an admission limit, connection
 * bookkeeping and logs, statistics, and a graceful drain on close.
 * Roles only say how one accepted socket is served.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { parseAddress, type Address } from '../addr/address.js';
import { createDialer, tuneSocket, type Dialer } from '../addr/dial.js';
import { Listener, type ListenTarget } from '../addr/listener.js';
import { DrainTimeoutError } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { DEFAULTS } from '../options.js';
import { Conn, type ConnSummary } from '../proto/conn.js';

export type { ConnSummary } from '../proto/conn.js';

export type RoleName = 'client' | 'server' | 'forward';

/** Options every role takes. Only `listen` and `connect` are required. */
export interface CommonOptions {
  /** Where to accept: `host:port`, `[v6]:port`, `/path.sock`, a parsed Address, or `{ kind: 'fd', fd }`. */
  listen: string | ListenTarget;
  /** Where to connect for each stream. */
  connect: string | Address;
  /** Streams served at once; more wait until one closes. Default 1000. */
  maxConnections?: number;
  /** Default 5000 ms. */
  connectTimeoutMs?: number;
  /** TCP keep-alive on every socket. Default true. */
  keepAlive?: boolean;
  /** Listen backlog. Default 4096. */
  backlog?: number;
  /** A pino-compatible logger; the library is silent without one. */
  logger?: Logger;
  /** Replace how outgoing connections are made (namespaces, balancing). */
  dialer?: Dialer;
}

/** Counters since start. */
export interface JumperStats {
  active: number;
  waiting: number;
  total: number;
  failed: number;
  bytesUp: number;
  bytesDown: number;
  /** Failed connections by reason code. */
  failures: Record<string, number>;
}

export interface Resolved {
  maxConnections: number;
  connectTimeoutMs: number;
  keepAlive: boolean;
  backlog: number;
}

/** The events a jumper emits; `close` fires once per connection with its summary. */
export interface JumperEvents {
  connection: [info: { id: number; peer: string }];
  close: [summary: ConnSummary];
}

export abstract class Jumper extends EventEmitter<JumperEvents> {
  readonly role: RoleName;
  protected readonly logger: Logger;
  protected readonly settings: Resolved;
  protected readonly dial: Dialer;
  readonly #listener: Listener;
  readonly #conns = new Set<Conn>();
  readonly #connectTarget: Address;
  #nextId = 1;
  #drainWaiters: (() => void)[] = [];
  readonly #stats: JumperStats = { active: 0, waiting: 0, total: 0, failed: 0, bytesUp: 0, bytesDown: 0, failures: {} };

  constructor(role: RoleName, options: CommonOptions, dialLabel: string) {
    super();
    this.role = role;
    this.logger = options.logger ?? silentLogger;
    this.settings = {
      maxConnections: options.maxConnections ?? DEFAULTS.maxConnections,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      keepAlive: options.keepAlive ?? DEFAULTS.keepAlive,
      backlog: options.backlog ?? DEFAULTS.backlog,
    };
    const target = typeof options.listen === 'string' ? parseAddress(options.listen) : options.listen;
    this.#connectTarget = typeof options.connect === 'string' ? parseAddress(options.connect) : options.connect;
    this.dial =
      options.dialer ??
      createDialer(this.#connectTarget, {
        connectTimeoutMs: this.settings.connectTimeoutMs,
        keepAlive: this.settings.keepAlive,
        keepAliveInitialDelayMs: DEFAULTS.keepAliveInitialDelayMs,
        label: dialLabel,
      });
    this.#listener = new Listener({
      target,
      maxConnections: this.settings.maxConnections,
      backlog: this.settings.backlog,
      logger: this.logger,
      onConnection: (socket, release) => this.#onConnection(socket, release),
    });
  }

  /** The address streams are forwarded to. */
  get connectAddress(): Address {
    return this.#connectTarget;
  }

  /**
   * Start accepting.
   * @throws ListenError (JUMPER_ERR_LISTEN) when the address cannot be bound.
   */
  async listen(): Promise<this> {
    await this.prepare();
    await this.#listener.listen();
    return this;
  }

  /** Role-specific start-up work before listening (e.g. loading libsodium). */
  protected async prepare(): Promise<void> {}

  /** The listening address (the real port when 0 was given). */
  address(): string {
    return this.#listener.address();
  }

  /** The listening TCP port, if listening on TCP. */
  port(): number | undefined {
    return this.#listener.port();
  }

  stats(): JumperStats {
    return { ...this.#stats, active: this.#listener.active, waiting: this.#listener.waiting, failures: { ...this.#stats.failures } };
  }

  /**
   * Stop accepting and let open streams finish. After `drainTimeoutMs`
   * (default 30 s) the remaining streams are cut with reason drain_timeout.
   */
  async close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
    await this.#listener.close();
    if (this.#conns.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const conn of [...this.#conns]) {
          conn.fail(new DrainTimeoutError(`stream still open after the ${drainTimeoutMs} ms drain timeout`), 'local');
        }
      }, drainTimeoutMs);
      timer.unref();
      this.#drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Serve one admitted connection; resolve or reject freely, the Conn reports the end. */
  protected abstract serve(conn: Conn, socket: Socket): Promise<void>;

  #onConnection(socket: Socket, release: () => void): void {
    tuneSocket(socket, { keepAlive: this.settings.keepAlive, keepAliveInitialDelayMs: DEFAULTS.keepAliveInitialDelayMs });
    const conn = new Conn(this.#nextId++, socket, (summary) => {
      this.#conns.delete(conn);
      release();
      this.#record(summary);
      if (this.#conns.size === 0) for (const wake of this.#drainWaiters.splice(0)) wake();
    });
    this.#conns.add(conn);
    this.#stats.total++;
    this.emit('connection', { id: conn.id, peer: conn.peer });
    void this.serve(conn, socket);
  }

  #record(summary: ConnSummary): void {
    const s = this.#stats;
    s.bytesUp += summary.bytesUp;
    s.bytesDown += summary.bytesDown;
    const line = {
      conn: summary.id,
      peer: summary.peer,
      bytesUp: summary.bytesUp,
      bytesDown: summary.bytesDown,
      durationMs: summary.durationMs,
      reason: summary.reason,
    };
    if (summary.reason === 'done') {
      this.logger.info(line, 'connection closed');
    } else {
      s.failed++;
      s.failures[summary.reason] = (s.failures[summary.reason] ?? 0) + 1;
      this.logger.warn({ ...line, err: summary.error?.message }, 'connection failed');
    }
    this.emit('close', summary);
  }
}
