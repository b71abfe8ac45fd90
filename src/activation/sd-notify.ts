/**
 * systemd's service notifications (sd_notify(3)). Under Type=notify systemd
 * starts the units ordered after jumper only once it says READY=1: after it
 * listens and has dropped privileges, not when the process is forked.
 * Type=notify-reload (systemd 253+) sends SIGHUP and waits for
 * RELOADING=1 ... READY=1. STOPPING=1 marks the drain, and with
 * WatchdogSec= a WATCHDOG=1 ping every half period lets systemd restart a
 * jumper whose event loop is stuck. Without $NOTIFY_SOCKET all of it is a
 * no-op.
 *
 * The variables are taken out of the environment when first read, as
 * sd_notify's unset_environment does: exec: commands and --start providers
 * are not jumper, and must not speak for it.
 */
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { lazyNativeExports } from '../native/binding.js';
import { MAX_DURATION_MS } from '../options.js';

interface DatagramBinding {
  sendUnixDatagram(path: string, bytes: Buffer): void;
}

const datagramBinding = lazyNativeExports<DatagramBinding>(['sendUnixDatagram']);

/** Where to notify, from the environment systemd gave this process. */
export interface NotifyTarget {
  /** $NOTIFY_SOCKET: a socket path, or @name for an abstract socket. */
  socket: string;
  /** $WATCHDOG_USEC when the watchdog is meant for this process ($WATCHDOG_PID unset or ours). */
  watchdogUsec?: number;
}

let claimed: { target: NotifyTarget | undefined; unsupported?: string } | undefined;

/**
 * Read (once) and remove NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from
 * `env`. Later calls return what the first one found.
 */
export function claimSystemdNotify(env: NodeJS.ProcessEnv = process.env, pid = process.pid): NotifyTarget | undefined {
  if (claimed) return claimed.target;
  const socket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID;
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  let target: NotifyTarget | undefined;
  if (socket && (socket.startsWith('/') || socket.startsWith('@'))) {
    target = { socket };
    const ours = watchdogPid === undefined || Number(watchdogPid) === pid;
    if (ours && Number.isSafeInteger(usec) && usec > 0) target.watchdogUsec = usec;
  }
  claimed = { target };
  if (socket && !target) claimed.unsupported = socket;
  return target;
}

/** CLOCK_MONOTONIC in µs, which RELOADING=1 carries (libuv's hrtime reads that clock). */
function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export class SystemdNotifier {
  readonly target: NotifyTarget | undefined;
  readonly #logger: Logger;
  /** Unref'd: it never holds the process open, and pings until exit. */
  #watchdog: NodeJS.Timeout | undefined;
  /** Failures already logged (one line per errno, not one per ping). */
  readonly #reported = new Set<string>();

  constructor(target: NotifyTarget | undefined, logger: Logger = silentLogger) {
    this.target = target;
    this.#logger = logger;
  }

  /** READY=1 (again after a reload), with an optional STATUS= line; starts the watchdog pings. */
  ready(status?: string): void {
    this.send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${status}`);
    this.#startWatchdog();
  }

  /** A reload starts: ready() again when it is over. */
  reloading(): void {
    this.send(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
  }

  stopping(): void {
    this.send('STOPPING=1');
  }

  /** One notification (newline-separated KEY=VALUE lines); never throws. */
  send(state: string): void {
    const socket = this.target?.socket;
    if (socket === undefined) return;
    const binding = datagramBinding();
    if (binding === null) {
      this.#reportOnce('native', { socket }, 'cannot notify systemd: the native addon is not available (Type=notify will time out)');
      return;
    }
    try {
      binding.sendUnixDatagram(socket, Buffer.from(state));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.#reportOnce(code, { socket, code, err: (err as Error).message }, 'cannot notify systemd');
    }
  }

  #startWatchdog(): void {
    const usec = this.target?.watchdogUsec;
    if (usec === undefined || this.#watchdog) return;
    // Half the period, as sd_watchdog_enabled(3) advises; at most setInterval's longest period.
    const everyMs = Math.min(MAX_DURATION_MS, Math.max(1, Math.floor(usec / 2000)));
    this.send('WATCHDOG=1');
    this.#watchdog = setInterval(() => this.send('WATCHDOG=1'), everyMs).unref();
  }

  #reportOnce(kind: string, fields: Record<string, unknown>, msg: string): void {
    if (this.#reported.has(kind)) return;
    this.#reported.add(kind);
    this.#logger.warn(fields, msg);
  }
}

/** A notifier for this process (a no-op one outside systemd). */
export function systemdNotifier(logger?: Logger): SystemdNotifier {
  const target = claimSystemdNotify();
  // e.g. systemd 253's vsock: addresses: say why Type=notify will time out.
  if (claimed?.unsupported !== undefined) logger?.warn({ socket: claimed.unsupported }, 'NOTIFY_SOCKET is not a Unix socket path or @name: systemd is not notified');
  return new SystemdNotifier(target, logger);
}
