/**
 * The pieces of /status that `jumper run` (the supervisor) and a single-role
 * command with --admin report alike.
 */
import type { Jumper } from '../roles/jumper.js';
import { backendsOf } from './backends.js';
import type { LinkStatus, ProcessStatus } from './server.js';

/** One link: its addresses, live counters and, when balancing, its backends. */
export function linkStatus(name: string, role: string, jumper: Jumper, state: LinkStatus['state'], error?: string): LinkStatus {
  const s: LinkStatus = { name, role, state, listen: jumper.address(), connect: jumper.connectDescription, stats: jumper.stats() };
  if (error) s.error = error;
  const backends = backendsOf(jumper);
  if (backends.length > 0) s.backends = backends;
  return s;
}

/** Who the process runs as now (after --user), where the platform says. */
export function processUser(): ProcessStatus['user'] {
  return process.getuid && process.getgid ? { uid: process.getuid(), gid: process.getgid() } : undefined;
}
