/**
 * What every role shares: listening with an admission limit, connection
 * bookkeeping and logs, statistics, and a graceful drain on close.
 * Roles only say how one accepted socket is served.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { formatAddress, parseAddress, type Address } from '../addr/address.js';
import { createDialer, createNetnsDialer, tuneSocket, type Dialer } from '../addr/dial.js';
import { openListenerInNetns } from '../netns/sockets.js';
import { OnDemandProvider } from '../activation/on-demand.js';
import { createExecDialer, EXEC_PREFIX } from '../activation/exec-target.js';
import { createHandoffDialer, HANDOFF_PREFIX } from '../activation/handoff.js';
import { inheritedFds, parseInheritedSpec, resolveInherited, type InheritedSpec } from '../activation/systemd.js';
import { Listener, type ListenTarget } from '../addr/listener.js';
import { DrainTimeoutError, InvalidArgumentError } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { DEFAULTS } from '../options.js';
import { Conn, type ConnSummary } from '../proto/conn.js';

export type { ConnSummary } from '../proto/conn.js';

export type RoleName = 'client' | 'server' | 'forward';

/** Options every role takes. Only `listen` and `connect` are required. */
export interface CommonOptions {
  /**
   * Where to accept: `host:port`, `[v6]:port`, `/path.sock`, `systemd` (every
   * socket systemd passed), `systemd:NAME` (by FileDescriptorName), `fd:N`,
   * a parsed Address, or `{ kind: 'fd', fd }`.
   */
  listen: string | ListenTarget;
  /**
   * Where to connect for each stream; `exec:COMMAND` runs COMMAND per stream
   * (stdin/stdout); `handoff:/path` passes a connected socket to the process
   * listening on that Unix socket (SCM_RIGHTS).
   */
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
  /** Replace how outgoing connections are made (balancing, tests). */
  dialer?: Dialer;
  /**
   * Start the provider on demand: `command` runs on the first connection that
   * needs it; after `idleStopMs` without streams it is stopped.
   */
  start?: { command: string; startTimeoutMs?: number; idleStopMs?: number };
  /** Create the listening socket inside this network namespace (name, path or pid:N). Needs the native addon and root. */
  listenNetns?: string;
  /** Open outgoing connections from inside this network namespace. Needs the native addon and root. */
  connectNetns?: string;
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
  /** With `--connect handoff:PATH`: the receiver's Unix socket. */
  protected readonly handoffPath: string | undefined;
  #listeners: Listener[] = [];
  readonly #listenTarget: ListenTarget | InheritedSpec;
  readonly #listenNetns: string | undefined;
  /** A Unix socket bound through the addon is not unlinked by Node on close. */
  #unixPathToRemove: string | undefined;

  #onDemand: OnDemandProvider | undefined;
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
    this.#listenTarget =
      typeof options.listen === 'string' ? parseInheritedSpec(options.listen) ?? parseAddress(options.listen) : options.listen;
    this.#listenNetns = options.listenNetns;
    const connect = options.connect;
    this.handoffPath = typeof connect === 'string' && connect.startsWith(HANDOFF_PREFIX) ? connect.slice(HANDOFF_PREFIX.length) : undefined;
    if (this.handoffPath !== undefined && !this.handoffPath.startsWith('/')) {
      throw new InvalidArgumentError('handoff: needs an absolute Unix socket path, e.g. handoff:/run/app/handoff.sock');
    }
    const exec = typeof connect === 'string' && connect.startsWith(EXEC_PREFIX) ? connect.slice(EXEC_PREFIX.length) : undefined;
    if (exec !== undefined && !exec.trim()) throw new InvalidArgumentError('exec: needs a command, e.g. exec:cat');
    // The exec target has no address; the placeholder only names it in logs.
    this.#connectTarget =
      exec !== undefined
        ? { kind: 'unix', path: `exec:${exec}` }
        : this.handoffPath !== undefined
          ? { kind: 'unix', path: this.handoffPath }
          : typeof connect === 'string'
            ? parseAddress(connect)
            : connect;
    if (this.handoffPath !== undefined && options.connectNetns) {
      throw new InvalidArgumentError('--connect-netns does not apply to handoff: (the path is reached through the file system)');
    }
    const dialOptions = {
      connectTimeoutMs: this.settings.connectTimeoutMs,
      keepAlive: this.settings.keepAlive,
      keepAliveInitialDelayMs: DEFAULTS.keepAliveInitialDelayMs,
      label: dialLabel,
    };
    let execDial: Dialer | undefined;
    if (exec !== undefined && !options.dialer) {
      if (options.connectNetns) throw new InvalidArgumentError('--connect-netns does not apply to exec: targets');
      execDial = createExecDialer(exec, { logger: this.logger, label: dialLabel });
    }
    const dial =
      options.dialer ??
      execDial ??
      (this.handoffPath !== undefined ? createHandoffDialer(this.handoffPath, dialLabel) : undefined) ??
      (options.connectNetns
        ? createNetnsDialer(options.connectNetns, this.#connectTarget, dialOptions)
        : createDialer(this.#connectTarget, dialOptions));
    if (options.start) {
      const onDemand = new OnDemandProvider({
        command: options.start.command,
        dial,
        startTimeoutMs: options.start.startTimeoutMs ?? DEFAULTS.startTimeoutMs,
        idleStopMs: options.start.idleStopMs,
        logger: this.logger,
      });
      this.#onDemand = onDemand;
    }
    this.dial = this.#onDemand?.dial ?? dial;
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
    if (this.#listeners.length > 0) throw new InvalidArgumentError('listen() was already called');
    await this.prepare();
    for (const target of await this.#resolveTargets()) {
      const listener = new Listener({
        target,
        maxConnections: this.settings.maxConnections,
        backlog: this.settings.backlog,
        logger: this.logger,
        onConnection: (socket, release) => this.#onConnection(socket, release),
      });
      this.#listeners.push(listener);
      await listener.listen();
    }
    return this;
  }

  /** Turn the listen option into concrete targets (one per inherited socket). */
  async #resolveTargets(): Promise<ListenTarget[]> {
    const spec = this.#listenTarget;
    if (spec.kind === 'systemd' || spec.kind === 'fd') {
      if (this.#listenNetns !== undefined) throw new InvalidArgumentError('--listen-netns cannot apply to an inherited socket');
      const prefix = spec.kind === 'systemd' ? 'systemd:' : '';
      return resolveInherited(spec, inheritedFds()).map((f) => ({ kind: 'fd', fd: f.fd, label: `${prefix}${f.name}` }));
    }
    if (this.#listenNetns !== undefined) {
      const fd = await openListenerInNetns(this.#listenNetns, spec, { backlog: this.settings.backlog });
      if (spec.kind === 'unix') this.#unixPathToRemove = spec.path;
      return [{ kind: 'fd', fd, label: `${formatAddress(spec)} in netns ${this.#listenNetns}` }];
    }
    return [spec];
  }

  /** Role-specific start-up work before listening (e.g. loading libsodium). */
  protected async prepare(): Promise<void> {}

  /** The listening address (the real port when 0 was given). */
  address(): string {
    if (this.#listeners.length > 0) return this.#listeners.map((l) => l.address()).join(', ');
    const spec = this.#listenTarget;
    return spec.kind === 'fd' ? `fd:${spec.fd}` : spec.kind === 'systemd' ? `systemd${spec.name ? `:${spec.name}` : ''}` : formatAddress(spec);
  }

  /** The listening TCP port, if listening on TCP. */
  port(): number | undefined {
    return this.#listeners[0]?.port();
  }

  stats(): JumperStats {
    const sum = (f: (l: Listener) => number) => this.#listeners.reduce((n, l) => n + f(l), 0);
    return { ...this.#stats, active: sum((l) => l.active), waiting: sum((l) => l.waiting), failures: { ...this.#stats.failures } };
  }

  /**
   * Stop accepting and let open streams finish. After `drainTimeoutMs`
   * (default 30 s) the remaining streams are cut with reason drain_timeout.
   */
  async close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
    await Promise.all(this.#listeners.map((l) => l.close()));
    if (this.#unixPathToRemove) await rm(this.#unixPathToRemove, { force: true });
    this.#unixPathToRemove = undefined;
    if (this.#conns.size > 0) await this.#drain(drainTimeoutMs);
    await this.#onDemand?.close();
  }

  /** The on-demand provider (with `start`), for its PID and start count. */
  get provider(): OnDemandProvider | undefined {
    return this.#onDemand;
  }

  #drain(drainTimeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
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
    if (summary.reason === 'done' || summary.reason === 'handed_off') {
      this.logger.info(line, 'connection closed');
    } else {
      s.failed++;
      s.failures[summary.reason] = (s.failures[summary.reason] ?? 0) + 1;
      this.logger.warn({ ...line, err: summary.error?.message }, 'connection failed');
    }
    this.emit('close', summary);
  }
}
