/**
 * What `jumper run` does: validate (--check), or start the supervisor, the
 * admin endpoint and the privilege drop, then serve until a signal.
 */
import { handleSignals, holdHangupUntilReady } from './signals.js';
import { buildLink } from '../config/build-link.js';
import { loadConfig } from '../config/load.js';
import { Supervisor } from '../config/run.js';
import { ConfigError } from '../errors.js';
import { silentLogger } from '../log/logger.js';
import { createLogger } from './logger.js';
import { createMetrics, dropTo, resolveUserFlags, serveAfterDrop, startAdmin } from './operate.js';
import type { RunFlags } from './run-command.js';

/** --check: validate the file and build every link (reads key files, parses addresses) without listening. */
export async function checkConfig(file: string): Promise<void> {
  const spec = await loadConfig(file);
  for (const link of spec.links) {
    await buildLink(link, silentLogger).catch((err: unknown) => {
      throw new ConfigError(`${file}: links "${link.name}": ${(err as Error).message}`, { cause: err });
    });
  }
  process.stdout.write(`${file}: ok, ${spec.links.length} link${spec.links.length === 1 ? '' : 's'}\n`);
}

/** Run every link of the file until SIGTERM/SIGINT; SIGHUP reloads. */
export async function runConfig(flags: RunFlags): Promise<void> {
  holdHangupUntilReady();
  // The log level may come from the file: peek at it (the supervisor validates it again).
  const preview = await loadConfig(flags.config);
  const logger = createLogger({ level: flags.logLevel ?? preview.logLevel ?? 'info', format: flags.logFormat, name: 'jumper' });
  const user = flags.user ?? preview.user;
  const group = flags.user !== undefined ? flags.group : (flags.group ?? preview.group);
  const dropTarget = resolveUserFlags({ user, group });
  const metrics = await createMetrics();
  const supervisor = new Supervisor({ file: flags.config, logger, metrics, willDropPrivileges: dropTarget !== undefined });
  // Connections accepted before the drop wait for it (nothing is served as root).
  const gate = serveAfterDrop(dropTarget);
  const spec = await supervisor.start(gate.listen);
  const admin = await startAdmin(flags.admin ?? spec.admin, metrics, () => supervisor.status(), logger);
  dropTo(dropTarget, logger);
  gate.dropped();
  supervisor.privilegesDropped = dropTarget !== undefined;
  handleSignals({
    logger,
    drainTimeoutMs: () => flags.drainTimeout ?? supervisor.spec.drainTimeoutMs,
    openStreams: () => supervisor.openStreams(),
    stop: (drainTimeoutMs) => Promise.all([supervisor.stop(drainTimeoutMs), admin?.close()]),
    reload: () => {
      logger.info({ config: flags.config }, 'SIGHUP: reloading the configuration');
      void supervisor.reload();
    },
  });
  // Only now: whoever waits for this line may send SIGHUP at once.
  logger.info({ config: flags.config, links: spec.links.length }, 'jumper run: all links listening');
}
