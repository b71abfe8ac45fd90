/**
 * After the listeners are up: start the admin endpoint and drop privileges,
 * in that order (the admin socket may need root too, e.g. under /run).
 */
import type { JumperMetrics } from '../admin/metrics.js';
import type { AdminServer, ProcessStatus } from '../admin/server.js';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { dropPrivileges, resolveDropTarget, type DropTarget } from '../privilege/drop.js';
import type { ListenOptions } from '../roles/jumper.js';

export interface OperateSetup {
  admin?: string | undefined;
  user?: string | undefined;
  group?: string | undefined;
  /** --busy-poll, microseconds. */
  busyPoll?: number | undefined;
}

/**
 * Resolve --user/--group early, so a typo fails before anything listens.
 * @throws InvalidArgumentError for a group without a user (it would be ignored)
 */
export function resolveUserFlags(setup: OperateSetup): DropTarget | undefined {
  if (setup.user === undefined) {
    if (setup.group !== undefined) throw new InvalidArgumentError('--group needs --user (the group is set when dropping to the user)');
    return undefined;
  }
  return resolveDropTarget(setup.user, setup.group);
}

/** Start the admin endpoint, if asked for. */
export async function startAdmin(address: string | undefined, metrics: JumperMetrics, status: () => ProcessStatus, logger: Logger): Promise<AdminServer | undefined> {
  if (address === undefined) return undefined;
  const { startAdminServer } = await import('../admin/server.js');
  const admin = await startAdminServer({ listen: address, metrics, status });
  logger.info({ admin: admin.address }, 'admin endpoint listening: /metrics /healthz /status');
  return admin;
}

/** Drop root for good, logging who we became. */
export function dropTo(target: DropTarget | undefined, logger: Logger): void {
  if (!target) return;
  dropPrivileges(target);
  logger.info({ user: target.user, uid: target.uid, gid: target.gid }, 'privileges dropped');
}

/**
 * What listen() waits on before serving when privileges are to be dropped:
 * `listen` goes to listen()/start(), `dropped()` is called after dropTo().
 */
export function serveAfterDrop(target: DropTarget | undefined): { listen: ListenOptions; dropped(): void } {
  if (!target) return { listen: {}, dropped: () => undefined };
  let dropped!: () => void;
  const serveAfter = new Promise<void>((resolve) => (dropped = resolve));
  return { listen: { serveAfter }, dropped };
}

/** A metrics registry; loaded on demand so commands without --admin never load prom-client. */
export async function createMetrics(): Promise<JumperMetrics> {
  const { JumperMetrics } = await import('../admin/metrics.js');
  return new JumperMetrics();
}
