/**
 * On-demand provider (`--start COMMAND`): the provider process is started by
 * the first connection that needs it, connections wait (bounded by the start
 * timeout) until its address accepts, and after `idleStopMs` without an open
 * stream it is stopped (SIGTERM, then SIGKILL after a grace period). The next
 * connection starts it again. A provider that fails to start or exits while
 * connections wait gives those connections a clear error; the next start is
 * delayed by an exponential back-off so a broken command is not spun.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Dialer } from '../addr/dial.js';
import { ConnectFailedError, ConnectTimeoutError, JumperError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { alsoOnRelease } from '../balance/stream-lease.js';
import { signalGroup, stopGroup } from './child-group.js';
import { logCommandOutput } from './command-output.js';
import { shellArgv } from './shell-command.js';

export interface OnDemandOptions {
  /** Shell command that runs the provider. */
  command: string;
  /** How connections reach the provider once it runs. */
  dial: Dialer;
  /** How long a connection may wait for the provider to accept. */
  startTimeoutMs: number;
  /** Stop the provider after this long without open streams; undefined = never. */
  idleStopMs?: number;
  logger: Logger;
}

/** Between connect attempts while the provider starts. */
const RETRY_INTERVAL_MS = 50;
/** SIGTERM, then SIGKILL after this. */
const KILL_GRACE_MS = 5_000;
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class OnDemandProvider {
  readonly #options: OnDemandOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  /** A stop in progress: the old process may still hold the port or a lock, so nothing starts before it exits. */
  #stopping: Promise<void> | undefined;
  #openStreams = 0;
  /** Dials in progress: the provider is not idle while one waits for it. */
  #dialing = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #notBefore = 0;
  #starts = 0;
  #closed = false;
  /** Providers we signalled: their exit is a stop, not a failure. */
  readonly #signalled = new WeakSet<ChildProcess>();

  constructor(options: OnDemandOptions) {
    this.#options = options;
    this.#log = options.logger.child({ provider: options.command });
  }

  /** Times the provider was started. */
  get starts(): number {
    return this.#starts;
  }

  /** PID of the running provider, if any. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The dialer to use instead of the plain one. */
  readonly dial: Dialer = async () => {
    this.#cancelIdleStop();
    this.#dialing++;
    try {
      return await this.#connect();
    } finally {
      // A failed dial opened no stream whose close would arm the idle stop:
      // arm it here, or a provider that never accepted would run for good.
      this.#dialing--;
      if (this.#openStreams === 0 && this.#dialing === 0) this.#scheduleIdleStop();
    }
  };

  async #connect(): Promise<Socket> {
    const deadline = Date.now() + this.#options.startTimeoutMs;
    // The process this connection is waiting for; if it exits, fail at once.
    let waitingFor: ChildProcess | undefined;
    // Time spent waiting for an idle stop is not the next provider's fault: no back-off for it.
    let waitedForStop = false;
    for (;;) {
      if (this.#closed) throw new ConnectFailedError('jumper is shutting down', { reason: 'provider_stopped' });
      if (waitingFor && this.#child !== waitingFor) {
        throw new ConnectFailedError(`provider "${this.#options.command}" exited before accepting connections`, { reason: 'provider_exited' });
      }
      if (!this.#child && this.#stopping) {
        // An idle stop is under way: a second provider started now would find the first one's port or lock.
        // Within this connection's deadline only (the old one may take its whole kill grace to exit).
        waitedForStop = true;
        let timer: NodeJS.Timeout | undefined;
        const outOfTime = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()))));
        const late = await Promise.race([this.#stopping.then(() => false), outOfTime]);
        clearTimeout(timer);
        if (late) {
          throw new ConnectTimeoutError(`provider "${this.#options.command}" was still stopping after ${this.#options.startTimeoutMs} ms`, { reason: 'provider_start_timeout' });
        }
        continue;
      }
      if (!this.#child) {
        await this.#start(deadline);
        // #start returns without a child when a stop began during its waits: wait for that stop above.
        if (!this.#child) continue;
      }
      waitingFor = this.#child;
      try {
        return this.#track(await this.#options.dial());
      } catch (err) {
        // Not accepting yet: the provider is still starting (or died: #start again).
        const retriable = err instanceof JumperError && /_(refused|timeout)$/.test(err.reason);
        if (!retriable) throw err;
        if (Date.now() + RETRY_INTERVAL_MS > deadline) {
          if (!waitedForStop) this.#recordFailure();
          throw new ConnectTimeoutError(`provider started by "${this.#options.command}" did not accept within ${this.#options.startTimeoutMs} ms`, {
            cause: err,
            reason: 'provider_start_timeout',
          });
        }
        await sleep(RETRY_INTERVAL_MS);
      }
    }
  }

  async #start(deadline: number): Promise<void> {
    const wait = this.#notBefore - Date.now();
    if (wait > 0) {
      if (Date.now() + wait > deadline) {
        throw new ConnectFailedError(`provider failed recently; next start in ${wait} ms`, { reason: 'provider_backoff' });
      }
      await sleep(wait);
    }
    const [file, args] = await shellArgv(this.#options.command);
    // During the waits close() may have run (a provider started now would outlive the jumper),
    // or another connection started the provider: one at a time.
    if (this.#closed) throw new ConnectFailedError('jumper is shutting down', { reason: 'provider_stopped' });
    if (this.#child || this.#stopping) return;
    // Its own session and process group (libuv's detached is setsid; no controlling terminal):
    // a terminal's Ctrl-C (SIGINT to the foreground group) must reach only the jumper, which
    // drains its streams and then stops the provider.
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.#child = child;
    this.#starts++;
    this.#log.info({ pid: child.pid }, 'provider started');
    logCommandOutput(child.stdout!, this.#log, { stream: 'stdout' });
    logCommandOutput(child.stderr!, this.#log, { stream: 'stderr' });
    // A second SIGTERM exits at once, without close(): the provider must not outlive us.
    const killOnExit = (): void => {
      signalGroup(child, 'SIGTERM');
    };
    process.once('exit', killOnExit);
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        process.off('exit', killOnExit);
        if (this.#child === child) this.#child = undefined;
        const expected = this.#signalled.has(child);
        if (!expected) this.#recordFailure();
        this.#log[expected ? 'info' : 'warn']({ pid: child.pid, code, signal }, expected ? 'provider stopped' : 'provider exited');
        resolve();
      });
      child.once('error', (err) => {
        process.off('exit', killOnExit);
        if (this.#child === child) this.#child = undefined;
        this.#recordFailure();
        this.#log.error({ err: err.message }, 'provider failed to start');
        resolve();
      });
    });
  }

  #recordFailure(): void {
    this.#failures++;
    const backoff = Math.min(BACKOFF_INITIAL_MS * 2 ** (this.#failures - 1), BACKOFF_MAX_MS);
    this.#notBefore = Date.now() + backoff;
  }

  /** Count a stream open until it ends: the connection releases the socket's lease then (in native code too). */
  #track(socket: Socket): Socket {
    this.#failures = 0;
    this.#notBefore = 0;
    this.#openStreams++;
    alsoOnRelease(socket, () => {
      this.#openStreams--;
      if (this.#openStreams === 0 && this.#dialing === 0) this.#scheduleIdleStop();
    });
    return socket;
  }

  #cancelIdleStop(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #scheduleIdleStop(): void {
    const idle = this.#options.idleStopMs;
    if (idle === undefined || !this.#child || this.#closed) return;
    this.#cancelIdleStop();
    this.#idleTimer = setTimeout(() => {
      if (this.#openStreams === 0 && this.#dialing === 0) {
        this.#log.info({ idleMs: idle }, 'no open stream: stopping the provider');
        void this.stop();
      }
    }, idle);
    this.#idleTimer.unref();
  }

  /**
   * Stop the provider: SIGTERM to its process group (a pipeline's other commands, its background
   * jobs), then SIGKILL to what is left after a grace period. Resolves when the provider and the
   * rest of its group have exited (also for a stop already under way).
   */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return this.#stopping;
    this.#child = undefined;
    this.#signalled.add(child);
    const stopping = stopGroup(child, this.#exited ?? Promise.resolve(), KILL_GRACE_MS);
    this.#stopping = stopping;
    await stopping;
    if (this.#stopping === stopping) this.#stopping = undefined;
  }

  /** For the jumper's close(): stop for good. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#cancelIdleStop();
    await this.stop();
  }
}
