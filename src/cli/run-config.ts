/**
 * What `jumper run` does: validate (--check), or start the supervisor, the
 * admin endpoint and the privilege drop, then serve until a signal.
 */
import { handleSignals, holdSignalsUntilReady } from './signals.js';
import { systemdNotifier } from '../activation/sd-notify.js';
import { buildLink } from '../config/build-link.js';
import { loadConfig } from '../config/load.js';
import { checkLinksDroppable, Supervisor } from '../config/run.js';
import { ConfigError } from '../errors.js';
import { silentLogger } from '../log/logger.js';
import { createLogger } from './logger.js';
import { createMetrics, dropTo, resolveUserFlags, serveAfterDrop, startAdmin } from './operate.js';
import { parseAddress } from '../addr/address.js';
import type { RunFlags } from './run-command.js';

/**
 * --check: what `jumper run` checks before it listens, without listening:
 * the file, every link built (key files read, addresses parsed), the admin
 * address, the user and group to drop to, and what cannot run after the drop.
 * The command line's --admin/--user/--group count as they would for run.
 */
export async function checkConfig(flags: RunFlags): Promise<void> {
  const file = flags.config;
  const spec = await loadConfig(file);
  // A problem in a value the file gave names the file; one in a command-line flag does not.
  const blame = (fromFile: boolean, check: () => void): void => {
    try {
      check();
    } catch (err) {
      if (!fromFile) throw err;
      throw new ConfigError(`${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const admin = flags.admin ?? spec.admin;
  if (admin !== undefined) blame(flags.admin === undefined, () => parseAddress(admin));
  const drop = dropFlags(flags, spec);
  blame(flags.user === undefined && flags.group === undefined, () => {
    if (resolveUserFlags(drop)) checkLinksDroppable(spec.links);
  });
  for (const link of spec.links) {
    await buildLink(link, silentLogger).catch((err: unknown) => {
      throw new ConfigError(`${file}: links "${link.name}": ${(err as Error).message}`, { cause: err });
    });
  }
  process.stdout.write(`${file}: ok, ${spec.links.length} link${spec.links.length === 1 ? '' : 's'}\n`);
}

/** --user/--group over the file's: a --user on the command line brings its own --group (or the user's primary group). */
function dropFlags(flags: RunFlags, spec: { user?: string; group?: string }): { user: string | undefined; group: string | undefined } {
  const user = flags.user ?? spec.user;
  const group = flags.user !== undefined ? flags.group : (flags.group ?? spec.group);
  return { user, group };
}

/** Run every link of the file until SIGTERM/SIGINT; SIGHUP reloads. */
export async function runConfig(flags: RunFlags): Promise<void> {
  holdSignalsUntilReady();
  // The log level may come from the file: peek at it (the supervisor validates it again).
  const preview = await loadConfig(flags.config);
  const logger = createLogger({ level: flags.logLevel ?? preview.logLevel ?? 'info', format: flags.logFormat, name: 'jumper' });
  const dropTarget = resolveUserFlags(dropFlags(flags, preview));
  const metrics = await createMetrics();
  const supervisor = new Supervisor({
    file: flags.config,
    logger,
    metrics,
    willDropPrivileges: dropTarget !== undefined,
    ...(flags.busyPoll !== undefined ? { busyPollUs: flags.busyPoll } : {}),
  });
  // Connections accepted before the drop wait for it (nothing is served as root).
  const gate = serveAfterDrop(dropTarget);
  const spec = await supervisor.start(gate.listen);
  let admin: Awaited<ReturnType<typeof startAdmin>>;
  try {
    admin = await startAdmin(flags.admin ?? spec.admin, metrics, () => supervisor.status(), logger);
    dropTo(dropTarget, logger);
  } catch (err) {
    // Nothing was served yet (the gate holds connections): close the links so socket files and etcd keys go too.
    await Promise.all([supervisor.stop(0, { stopAcceptingAtOnce: true }), admin?.close()]);
    throw err;
  }
  gate.dropped();
  supervisor.privilegesDropped = dropTarget !== undefined;
  const notifier = systemdNotifier(logger);
  handleSignals({
    logger,
    drainTimeoutMs: () => flags.drainTimeout ?? supervisor.spec.drainTimeoutMs,
    openStreams: () => supervisor.openStreams(),
    stop: (drainTimeoutMs) => Promise.all([supervisor.stop(drainTimeoutMs), admin?.close()]),
    reload: async () => {
      logger.info({ config: flags.config }, 'SIGHUP: reloading the configuration');
      return supervisor.reload();
    },
    notifier,
  });
  // Only now: whoever waits for this line may send SIGHUP at once.
  logger.info({ config: flags.config, links: spec.links.length }, 'jumper run: all links listening');
  notifier.ready(`${spec.links.length} links`);
}
