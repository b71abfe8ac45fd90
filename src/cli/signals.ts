/**
 * The daemon signal contract shared by single-role commands and `jumper
 * run`: SIGTERM/SIGINT drain then exit 0 (a second one exits 1 at once),
 * SIGHUP reloads whatever the command reloads.
 */
import type { Logger } from '../log/logger.js';

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
  reload(): void;
}

export function handleSignals(h: SignalHandlers): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      h.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
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
  process.on('SIGHUP', () => h.reload());
}
