/**
 * What every role shares: listening with an admission limit, connection
 * bookkeeping and logs, statistics, and a graceful drain on close.
 * Roles only say how one accepted socket is served.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { formatAddress, parseAddress, type Address } from '../addr/address.js';
import { tuneSocket, type Dialer } from '../addr/dial.js';
import { openListenerInNetns } from '../netns/sockets.js';
import { closeFd } from '../activation/handoff.js';
import { OnDemandProvider } from '../activation/on-demand.js';
import type { BackendStatus } from '../balance/backend.js';
import { HealthChecker } from '../balance/health.js';
import type { BackendInput, BackendPool } from '../balance/pool.js';
import { EtcdDiscovery } from '../discovery/etcd-discovery.js';
import { EtcdRegistration } from '../discovery/etcd-registration.js';
import type { EtcdAccess } from '../discovery/etcd-access.js';
import { planConnect, type BalanceOptions } from './connect-plan.js';
import { inheritedFds, parseInheritedSpec, resolveInherited, type InheritedSpec } from '../activation/systemd.js';
import { applyUnixPermissions, Listener, restrictsUnixPermissions, RESTRICTIVE_UMASK, type ListenerOptions, type ListenTarget } from '../addr/listener.js';
import { Slots } from '../addr/slots.js';
import { createAllowList } from '../addr/allow.js';
import { performance } from 'node:perf_hooks';
import { CLEAN_END_REASONS, DrainTimeoutError, InvalidArgumentError, reasonOf } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import type { PreconnectOutcome } from './preconnect.js';
import { nativeExports } from '../native/binding.js';
import { checkPositiveInteger, DEFAULTS } from '../options.js';
import { Conn, type ConnSummary } from '../proto/conn.js';

export type { ConnSummary } from '../proto/conn.js';

export type RoleName = 'client' | 'server' | 'forward' | 'balance';
export type { BalanceOptions } from './connect-plan.js';

/** Self-registration in etcd (see docs/discovery.md). */
export interface RegisterOptions {
  /** etcd://HOST:PORT[,HOST:PORT]/PREFIX */
  url: string;
  /** The address balancers and clients should connect to. */
  advertise: string;
  /** Default 1. */
  weight?: number;
  /** Lease TTL; default 10 s. */
  ttlSeconds?: number;
  /** On close: keep accepting this long after deregistering. Default 1000 ms. */
  deregisterDelayMs?: number;
}

/** Options every role takes. `listen` and `connect` (or `discover`) are required. */
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
   * listening on that Unix socket (SCM_RIGHTS). Several addresses (each
   * optionally `ADDR,weight=W`) balance new streams over them.
   */
  connect?: string | Address | readonly string[];
  /** Balance over the backends registered in etcd: etcd://HOST:PORT[,HOST:PORT]/PREFIX. */
  discover?: string;
  /** Strategy, ejection and health checks when balancing. */
  balance?: BalanceOptions;
  /** Register this jumper in etcd while it listens. */
  register?: RegisterOptions;
  /** TLS files and etcd user for `discover` and `register` (both use the same). */
  etcd?: EtcdAccess;
  /** Streams served at once; more wait until one closes. Default 1000. */
  maxConnections?: number;
  /**
   * Server jumper: connections still in the handshake, each until it proves
   * the key or hits the handshake timeout. A server counts a stream against
   * `maxConnections` only once it is authenticated, so stalled handshakes
   * (slowloris) cannot starve real clients. Default 4096.
   * Client jumper: wires being dialled and handshaken at once; further
   * streams wait, unread and untimed, so a burst never overflows the
   * server's accept queue. Default 256.
   */
  maxHandshakes?: number;
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
  /** Serve only peers in these CIDRs/addresses; others are reset at accept (reason not_allowed). */
  allow?: readonly string[];
  /** Unix listener: socket file mode, e.g. 0o660. */
  listenMode?: number;
  /** Unix listener: socket file owner (numeric; see resolveOwner). */
  listenOwner?: { uid: number; gid: number };
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
  /** Accept-stage limit: maxHandshakes on a server, else maxConnections. */
  acceptLimit: number;
  connectTimeoutMs: number;
  keepAlive: boolean;
  backlog: number;
}

/** The events a jumper emits; `close` fires once per connection with its summary. */
export interface JumperEvents {
  connection: [info: { id: number; peer: string }];
  close: [summary: ConnSummary];
  /** Each outgoing connect: how long it took, and the failure reason if any (metrics). */
  dial: [info: { durationMs: number; error?: string }];
  /** Client --preconnect: a take (hit/miss) or a wire that ended unused (metrics). */
  preconnect: [outcome: PreconnectOutcome];
}

export interface ListenOptions {
  /**
   * Connections accepted before this settles wait, unread, until then: a
   * daemon that drops privileges after binding serves no stream as root
   * (spawns no --start or exec: command, dials no provider for a stream).
   */
  serveAfter?: Promise<unknown>;
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
  readonly #listenerExtras: Pick<ListenerOptions, 'allow' | 'unixMode' | 'unixOwner'>;
  /** A Unix socket bound through the addon is not unlinked by Node on close. */
  #unixPathToRemove: string | undefined;

  #onDemand: OnDemandProvider | undefined;
  readonly #conns = new Set<Conn>();
  /** Server: stream slots (maxConnections), taken once a client authenticated. */
  readonly #streamSlots: Slots | undefined;
  readonly #acceptReleases = new Map<Conn, () => void>();
  readonly #streamHolders = new Set<Conn>();
  readonly #connectTarget: Address | undefined;
  /** Where streams go, for the start-up line: an address, a list, or an etcd URL. */
  readonly connectDescription: string;
  readonly #pool: BackendPool | undefined;
  #discovery: EtcdDiscovery | undefined;
  #health: HealthChecker | undefined;
  #registration: EtcdRegistration | undefined;
  #deregisterDelayMs = 0;
  #nextId = 1;
  #drainWaiters: (() => void)[] = [];
  /** listen({ serveAfter }) until it settles. */
  #serveGate: Promise<void> | undefined;
  readonly #stats: JumperStats = { active: 0, waiting: 0, total: 0, failed: 0, bytesUp: 0, bytesDown: 0, failures: {} };

  constructor(role: RoleName, options: CommonOptions, dialLabel: string) {
    super();
    this.role = role;
    this.logger = options.logger ?? silentLogger;
    // A limit of 0 or 1.5 would hold every stream forever, unread: refused here, for every role.
    if (options.maxConnections !== undefined) checkPositiveInteger(options.maxConnections, 'maxConnections');
    if (options.maxHandshakes !== undefined) checkPositiveInteger(options.maxHandshakes, 'maxHandshakes');
    this.settings = {
      maxConnections: options.maxConnections ?? DEFAULTS.maxConnections,
      acceptLimit: role === 'server' ? options.maxHandshakes ?? DEFAULTS.maxHandshakes : options.maxConnections ?? DEFAULTS.maxConnections,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      keepAlive: options.keepAlive ?? DEFAULTS.keepAlive,
      backlog: options.backlog ?? DEFAULTS.backlog,
    };
    this.#listenTarget =
      typeof options.listen === 'string' ? parseInheritedSpec(options.listen) ?? parseAddress(options.listen) : options.listen;
    this.#listenNetns = options.listenNetns;
    // Refused rather than ignored: each applies to one kind of listener only.
    if ((options.listenMode !== undefined || options.listenOwner !== undefined) && this.#listenTarget.kind !== 'unix') {
      throw new InvalidArgumentError(
        this.#listenTarget.kind === 'tcp'
          ? '--listen-mode/--listen-owner apply to a Unix socket listener (--listen /path.sock), not to TCP (use --allow)'
          : '--listen-mode/--listen-owner apply to a socket file jumper creates; for an inherited socket set them where it is made (systemd: SocketMode=, SocketUser=)',
      );
    }
    if (options.allow !== undefined && this.#listenTarget.kind === 'unix') {
      throw new InvalidArgumentError('--allow: a Unix socket has no peer address; use --listen-mode/--listen-owner');
    }
    if (options.etcd !== undefined && options.discover === undefined && options.register === undefined) {
      throw new InvalidArgumentError('etcd credentials (--etcd-ca, --etcd-cert, --etcd-user, ...) apply with --discover or --register');
    }
    this.#streamSlots = role === 'server' ? new Slots(this.settings.maxConnections) : undefined;
    this.#listenerExtras = {
      ...(options.allow ? { allow: createAllowList(options.allow) } : {}),
      ...(options.listenMode !== undefined ? { unixMode: options.listenMode } : {}),
      ...(options.listenOwner ? { unixOwner: options.listenOwner } : {}),
    };
    const dialOptions = {
      connectTimeoutMs: this.settings.connectTimeoutMs,
      keepAlive: this.settings.keepAlive,
      label: dialLabel,
    };
    const plan = planConnect(
      {
        connect: options.connect,
        discover: options.discover,
        balance: options.balance,
        connectNetns: options.connectNetns,
        dialer: options.dialer,
        hasStart: options.start !== undefined,
        // A balancer keeps a pool even for one backend (ejection, health, status).
        alwaysPool: role === 'balance',
      },
      dialOptions,
      this.logger,
    );
    this.handoffPath = plan.handoffPath;
    this.#connectTarget = plan.target;
    this.connectDescription = plan.description;
    this.#pool = plan.pool;
    if (plan.pool && plan.discover !== undefined) {
      const pool = plan.pool;
      this.#discovery = new EtcdDiscovery({
        url: plan.discover,
        access: options.etcd,
        logger: this.logger,
        onUpdate: (backends) => pool.update(backends),
        // A registration the pool would refuse (a host name inside a namespace) is ignored, with its reason.
        ...(plan.checkBackend ? { checkAddress: plan.checkBackend } : {}),
      });
    }
    if (plan.pool && options.balance?.healthIntervalMs) this.#health = new HealthChecker(plan.pool, options.balance.healthIntervalMs);
    if (options.register) {
      const r = options.register;
      this.#registration = new EtcdRegistration({
        url: r.url,
        access: options.etcd,
        advertise: r.advertise,
        weight: r.weight ?? 1,
        ttlSeconds: r.ttlSeconds ?? DEFAULTS.leaseTtlSeconds,
        role: role,
        logger: this.logger,
      });
      this.#deregisterDelayMs = r.deregisterDelayMs ?? DEFAULTS.deregisterDelayMs;
    }
    const dial = plan.dial;
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
    this.dial = this.#timed(this.#onDemand?.dial ?? dial);
  }

  /** The address streams are forwarded to; undefined when balancing over several. */
  get connectAddress(): Address | undefined {
    return this.#connectTarget;
  }

  /** Backends and their live counters when balancing (else empty). */
  backends(): BackendStatus[] {
    return this.#pool?.status() ?? [];
  }

  /**
   * Replace the backend set of a balancing role (what etcd discovery does):
   * new backends take streams at once, missing ones drain. Weights default
   * to 1; a bad weight or address throws and changes nothing.
   * @throws InvalidArgumentError
   */
  updateBackends(backends: readonly BackendInput[]): void {
    if (!this.#pool) throw new InvalidArgumentError('this jumper does not balance (give several connect addresses, backends or discover)');
    this.#pool.update(backends);
  }

  /** The etcd registration, when `register` was given. */
  get registration(): EtcdRegistration | undefined {
    return this.#registration;
  }

  /** The etcd discovery, when `discover` was given. */
  get discovery(): EtcdDiscovery | undefined {
    return this.#discovery;
  }

  /**
   * Start accepting.
   * @throws ListenError (JUMPER_ERR_LISTEN) when the address cannot be bound.
   */
  async listen(options: ListenOptions = {}): Promise<this> {
    if (this.#listeners.length > 0) throw new InvalidArgumentError('listen() was already called');
    if (options.serveAfter) {
      const gate = options.serveAfter.then(
        () => undefined,
        () => undefined,
      );
      this.#serveGate = gate;
      void gate.then(() => {
        if (this.#serveGate === gate) this.#serveGate = undefined;
      });
    }
    await this.prepare();
    let targets: ListenTarget[] = [];
    try {
      targets = await this.#resolveTargets();
      for (const target of targets) {
        const listener = new Listener({
          target,
          maxConnections: this.settings.acceptLimit,
          backlog: this.settings.backlog,
          logger: this.logger,
          onConnection: (socket, release) => this.#onConnection(socket, release),
          onRefused: (peer) => this.#onRefused(peer),
          ...this.#listenerExtras,
        });
        this.#listeners.push(listener);
        await listener.listen();
      }
      // Backends first (a balancer with an empty set refuses streams), then announce ourselves.
      await this.#discovery?.start();
      this.#health?.start();
      await this.#registration?.start();
    } catch (err) {
      // A failed start leaves nothing serving: a link reported failed must not accept on the sockets that did bind.
      for (const target of targets.slice(this.#listeners.length)) if (target.kind === 'fd') closeFd(target.fd);
      await this.#stopAccepting();
      this.#health?.stop();
      await this.#discovery?.close();
      throw err;
    }
    return this;
  }

  /** Turn the listen option into concrete targets (one per inherited socket). */
  async #resolveTargets(): Promise<ListenTarget[]> {
    const spec = this.#listenTarget;
    if (spec.kind === 'systemd' || spec.kind === 'fd') {
      if (this.#listenNetns !== undefined) throw new InvalidArgumentError('--listen-netns cannot apply to an inherited socket');
      const prefix = spec.kind === 'systemd' ? 'systemd:' : '';
      return resolveInherited(spec, inheritedFds()).map((f) => ({ kind: 'fd', fd: listeningCopy(f.fd), label: `${prefix}${f.name}` }));
    }
    if (this.#listenNetns !== undefined) {
      // As for a plain Unix listener: a tight umask while binding, then the exact mode and owner.
      // The umask is the binding thread's own: the process's stays as it was during the await.
      const restrict = spec.kind === 'unix' && restrictsUnixPermissions(this.#listenerExtras);
      const umask = restrict ? RESTRICTIVE_UMASK : undefined;
      const fd = await openListenerInNetns(this.#listenNetns, spec, { backlog: this.settings.backlog, umask });
      if (spec.kind === 'unix') {
        this.#unixPathToRemove = spec.path;
        await applyUnixPermissions(spec.path, this.#listenerExtras).catch((err: unknown) => {
          closeFd(fd);
          throw err;
        });
      }
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
    const streams = this.#streamSlots;
    return {
      ...this.#stats,
      active: sum((l) => l.active) + (streams?.inUse ?? 0),
      waiting: sum((l) => l.waiting) + (streams?.waiting ?? 0),
      failures: { ...this.#stats.failures },
    };
  }

  /** Close the listeners (synchronously, in effect) and remove a socket file we bound in a namespace. */
  async #stopAccepting(): Promise<void> {
    const closed = Promise.all(this.#listeners.map((l) => l.close()));
    const path = this.#unixPathToRemove;
    this.#unixPathToRemove = undefined;
    if (path) {
      // Now, before any await: a reload's new instance binds the same path a tick later.
      try {
        unlinkSync(path);
      } catch (err) {
        // Gone already; or, after --user, a directory not ours to change: say so, and still drain.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') this.logger.warn({ path, err: code ?? (err as Error).message }, 'cannot remove the listening socket file');
      }
    }
    await closed;
  }

  /**
   * Stop accepting and let open streams finish. After `drainTimeoutMs`
   * (default 30 s) the remaining streams are cut with reason drain_timeout.
   * A registered jumper (any role) first leaves etcd and keeps accepting for the
   * deregister delay, so balancers stop sending before it stops listening;
   * `stopAcceptingAtOnce` closes the listeners first instead (a reload that
   * hands the address to a new instance, which registers it again).
   */
  async close(options: { drainTimeoutMs?: number; stopAcceptingAtOnce?: boolean } = {}): Promise<void> {
    const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
    const stoppedAccepting = options.stopAcceptingAtOnce ? this.#stopAccepting() : undefined;
    if (this.#registration) {
      await this.#registration.stop();
      // Keep accepting until balancers have seen the deregistration.
      if (!options.stopAcceptingAtOnce && this.#deregisterDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#deregisterDelayMs));
    }
    await (stoppedAccepting ?? this.#stopAccepting());
    if (this.#conns.size > 0) await this.#drain(drainTimeoutMs);
    this.#health?.stop();
    await this.#discovery?.close();
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

  /**
   * Whether accepted sockets stay with this jumper (and get its no-delay and
   * keep-alive settings). A forward that hands them off passes them on as the
   * kernel gave them, as if the receiver had accepted them itself.
   */
  protected get keepsAcceptedSockets(): boolean {
    return true;
  }

  /** Serve one admitted connection; resolve or reject freely, the Conn reports the end. */
  protected abstract serve(conn: Conn, socket: Socket): Promise<void>;

  /**
   * Second admission stage (server): the connection authenticated, so it
   * leaves the handshake stage and waits, unread, for a stream slot.
   */
  protected async admitStream(conn: Conn): Promise<void> {
    const slots = this.#streamSlots;
    if (!slots) return;
    this.#acceptReleases.get(conn)?.();
    this.#acceptReleases.delete(conn);
    await slots.take();
    if (conn.closed) slots.release();
    else this.#streamHolders.add(conn);
  }

  #onConnection(socket: Socket, release: () => void): void {
    if (this.keepsAcceptedSockets) tuneSocket(socket, { keepAlive: this.settings.keepAlive });
    const conn = new Conn(this.#nextId++, socket, (summary) => {
      this.#conns.delete(conn);
      release();
      this.#acceptReleases.delete(conn);
      if (this.#streamHolders.delete(conn)) this.#streamSlots!.release();
      this.#record(summary);
      if (this.#conns.size === 0) for (const wake of this.#drainWaiters.splice(0)) wake();
    });
    this.#conns.add(conn);
    if (this.#streamSlots) this.#acceptReleases.set(conn, release);
    this.#stats.total++;
    this.emit('connection', { id: conn.id, peer: conn.peer });
    const gate = this.#serveGate;
    if (gate) {
      void gate.then(() => {
        if (conn.closed) socket.destroy();
        else return this.serve(conn, socket);
      });
    } else void this.serve(conn, socket);
  }

  /** Report each connect's duration ('dial' event) without changing its outcome. */
  #timed(dial: Dialer): Dialer {
    return async () => {
      const started = performance.now();
      try {
        const socket = await dial();
        this.emit('dial', { durationMs: performance.now() - started });
        return socket;
      } catch (err) {
        this.emit('dial', { durationMs: performance.now() - started, error: reasonOf(err) });
        throw err;
      }
    };
  }

  /** A peer outside --allow: counted and logged like a failed connection, never served. */
  #onRefused(peer: string): void {
    this.#stats.total++;
    const id = this.#nextId++;
    this.emit('connection', { id, peer });
    this.#record({ id, peer, bytesUp: 0, bytesDown: 0, durationMs: 0, reason: 'not_allowed' });
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
      ...(summary.target !== undefined ? { target: summary.target } : {}),
    };
    if (CLEAN_END_REASONS.has(summary.reason)) {
      this.logger.info(line, 'connection closed');
    } else {
      s.failed++;
      s.failures[summary.reason] = (s.failures[summary.reason] ?? 0) + 1;
      this.logger.warn({ ...line, err: summary.error?.message }, 'connection failed');
    }
    this.emit('close', summary);
  }
}

/**
 * The descriptor a listener on an inherited socket owns: a duplicate, so
 * closing it (stop, or a reload replacing the link) leaves the inherited
 * one open for the next instance; connections queue there meanwhile.
 * Without the addon, the inherited descriptor itself (then a replaced link
 * cannot listen again until a restart).
 */
function listeningCopy(fd: number): number {
  // The addon's dupFd, whether or not its record pump is switched off.
  const addon = nativeExports<{ dupFd(fd: number): number }>(['dupFd']);
  return addon ? addon.dupFd(fd) : fd;
}
