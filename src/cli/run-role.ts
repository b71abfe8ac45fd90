/**
 * Run one role in the foreground the way operators expect from a daemon:
 * start-up line, SIGTERM/SIGINT drain then exit 0, SIGHUP re-reads the key.
 */
import type { Logger as PinoLogger } from 'pino';
import type { Jumper } from '../roles/jumper.js';
import type { ProcessStatus } from '../admin/server.js';
import { linkStatus, processUser } from '../admin/status.js';
import { handleSignals, holdSignalsUntilReady } from './signals.js';
import { systemdNotifier } from '../activation/sd-notify.js';
import { checkDroppable } from '../privilege/drop.js';
import { applyBusyPoll } from '../native/busy-poll.js';
import { createMetrics, dropTo, resolveUserFlags, serveAfterDrop, startAdmin, type OperateSetup } from './operate.js';

export interface RunRoleOptions {
  jumper: Jumper;
  logger: PinoLogger;
  drainTimeoutMs: number;
  /** Extra fields for the start-up line (key fingerprint, ...). Never key bytes. */
  startFields: Record<string, unknown>;
  /** Re-read key material on SIGHUP; absent for key-less roles. */
  reloadKey?: () => Promise<Record<string, unknown>>;
  /** --admin, --user, --group; and --connect-netns, which cannot outlive --user. */
  operate?: OperateSetup & { connectNetns?: string | undefined };
}

export async function runRole(options: RunRoleOptions): Promise<void> {
  const { jumper, logger } = options;
  holdSignalsUntilReady();
  const dropTarget = resolveUserFlags(options.operate ?? {});
  if (dropTarget) checkDroppable(jumper.role, { connectNetns: options.operate?.connectNetns });
  // Connections accepted before the drop wait for it (nothing is served as root).
  const gate = serveAfterDrop(dropTarget);
  applyBusyPoll(options.operate?.busyPoll ?? 0, logger);
  await jumper.listen(gate.listen);
  let admin: Awaited<ReturnType<typeof startAdmin>>;
  try {
    admin = await startAdminFor(options);
    dropTo(dropTarget, logger);
  } catch (err) {
    // Nothing was served yet (the gate holds connections): close, so a socket file and an etcd key go too.
    await Promise.all([jumper.close({ drainTimeoutMs: 0, stopAcceptingAtOnce: true }), admin?.close()]);
    throw err;
  }
  gate.dropped();
  const notifier = systemdNotifier(logger);
  handleSignals({
    logger,
    drainTimeoutMs: () => options.drainTimeoutMs,
    openStreams: () => jumper.stats().active,
    stop: (drainTimeoutMs) => Promise.all([jumper.close(drainTimeoutMs === undefined ? {} : { drainTimeoutMs }), admin?.close()]),
    stoppedFields: () => ({ ...jumper.stats() }),
    reload: async () => {
      if (!options.reloadKey) {
        logger.info('SIGHUP: nothing to reload for this role');
        return;
      }
      await options.reloadKey().then(
        (fields) => logger.info(fields, 'SIGHUP: key reloaded; new streams use it, open streams keep theirs'),
        (err: unknown) => logger.error({ err: (err as Error).message, code: (err as { code?: string }).code }, 'SIGHUP: key reload failed; keeping the old key'),
      );
    },
    notifier,
  });
  // Only now: whoever waits for this line may signal at once (SIGHUP before the
  // handler is installed would kill the process).
  logger.info(
    { role: jumper.role, listen: jumper.address(), connect: options.startFields.connect, ...options.startFields },
    `${jumper.role} jumper listening`,
  );
  notifier.ready(`${jumper.role} listening on ${jumper.address()}`);
}

/** The admin endpoint for this one role, when --admin is given. */
async function startAdminFor(options: RunRoleOptions): Promise<Awaited<ReturnType<typeof startAdmin>>> {
  const { jumper, logger } = options;
  if (options.operate?.admin === undefined) return undefined;
  const metrics = await createMetrics();
  metrics.attach(jumper.role, jumper);
  // One link, named after its role: it listens (runRole only gets here once it does).
  metrics.setLinkUp(jumper.role, jumper.role, true);
  const started = Date.now();
  const status = (): ProcessStatus => {
    const report: ProcessStatus = {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      links: [linkStatus(jumper.role, jumper.role, jumper, 'running')],
    };
    const user = processUser();
    if (user) report.user = user;
    return report;
  };
  return startAdmin(options.operate.admin, metrics, status, logger);
}
