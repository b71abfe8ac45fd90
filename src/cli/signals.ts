/**
 * The daemon signal contract shared by single-role commands and `jumper
 * run`: SIGTERM/SIGINT drain then exit 0 (a second one exits 1 at once),
 * SIGHUP reloads whatever the command reloads.
 */
import type { Logger } from '../log/logger.js';
import type { SystemdNotifier } from '../activation/sd-notify.js';

export interface SignalHandlers {
  logger: Logger;
  /** Read at signal time (a reloaded config may change it); undefined: the default. */
  drainTimeoutMs(): number | undefined;
  /** Streams open now, for the stopping line. */
  openStreams(): number;
  /** Stop accepting and drain (everything the command runs, admin endpoint included). */
  stop(drainTimeoutMs: number | undefined): Promise<unknown>;
  /** Fields for the 'stopped' line. */
  stoppedFields?(): Record<string, unknown>;
  /** Settles when the reload is over (applied or refused). */
  reload(): Promise<unknown>;
  /** Told STOPPING=1 and RELOADING=1 ... READY=1 (systemd Type=notify, notify-reload). */
  notifier?: SystemdNotifier;
}

/** A SIGHUP that came during start-up, replayed by handleSignals. */
let heldHangup = false;
const holdHangup = (): void => {
  heldHangup = true;
};

/**
 * From the start of a daemon command until handleSignals: Node's default for
 * SIGHUP would kill the process (a reload sent while it binds, or while etcd
 * holds its start-up), so it is noted and replayed once the handlers exist.
 */
export function holdHangupUntilReady(): void {
  process.on('SIGHUP', holdHangup);
}

/** A SIGTERM or SIGINT that came during start-up, acted on by handleSignals. */
let heldStop: NodeJS.Signals | undefined;
const holdStop = (signal: NodeJS.Signals): void => {
  // A second one is the operator's "now", as after start-up (a start-up that hangs stays stoppable).
  if (heldStop !== undefined) process.exit(1);
  heldStop = signal;
};

/**
 * holdHangupUntilReady, and the same for SIGTERM and SIGINT: Node's default
 * would end the process at once, after it may have registered in etcd or
 * bound a socket file, and leave the key until its lease ends (and the file).
 * The stop is carried out by handleSignals once start-up is over: the usual
 * drain (of nothing yet), deregistering on the way.
 */
export function holdSignalsUntilReady(): void {
  holdHangupUntilReady();
  process.on('SIGTERM', holdStop);
  process.on('SIGINT', holdStop);
}

export function handleSignals(h: SignalHandlers): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      h.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    h.notifier?.stopping();
    const drainTimeoutMs = h.drainTimeoutMs();
    h.logger.info({ signal, open: h.openStreams(), drainTimeoutMs }, 'stopping: no new connections, draining open streams');
    h.stop(drainTimeoutMs).then(
      () => {
        h.logger.info(h.stoppedFields?.() ?? {}, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        h.logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.off('SIGTERM', holdStop);
  process.off('SIGINT', holdStop);
  // Reloads may overlap (one per SIGHUP): READY=1 only when none runs any more.
  let reloading = 0;
  const reload = (): void => {
    if (stopping) return;
    if (reloading++ === 0) h.notifier?.reloading();
    void h.reload().finally(() => {
      if (--reloading === 0 && !stopping) h.notifier?.ready();
    });
  };
  // Add before removing: with no listener left for a moment, Node closes the
  // signal's handle and a SIGHUP libuv has caught but not yet dispatched is lost.
  process.on('SIGHUP', reload);
  process.off('SIGHUP', holdHangup);
  if (heldStop !== undefined) {
    const signal = heldStop;
    heldStop = undefined;
    heldHangup = false; // stopping: nothing to reload
    // After the caller's start-up line and first READY=1, as for a held SIGHUP.
    setImmediate(() => {
      h.logger.info({ signal }, `${signal} received during start-up: stopping now`);
      stop(signal);
    });
  } else if (heldHangup) {
    heldHangup = false;
    h.logger.info('SIGHUP received during start-up: reloading now');
    // After the caller's first READY=1 (sent right after this returns), so systemd sees ready, reloading, ready.
    setImmediate(reload);
  }
}
