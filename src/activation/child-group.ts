/**
 * Signals for the commands the jumper starts (`--start`, `exec:`). They run
 * detached, so each is the leader of its own process group, and the group
 * holds what the command started: the other members of a pipeline
 * (`a | b`), its background jobs. Signalling only the leader would leave
 * those running, holding the provider's port or a lock.
 */
import type { ChildProcess } from 'node:child_process';

/**
 * Send `signal` to the child's whole process group. Only while the child is
 * unreaped (no 'exit' yet): until then its pid, which is the group's id,
 * cannot be given to another process. Falls back to the child alone if the
 * command moved itself to another group. Returns whether a signal was sent.
 */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return child.kill(signal);
  }
}
