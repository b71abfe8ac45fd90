/**
 * Signals for the commands the jumper starts (`--start`, `exec:`). They run
 * detached (setsid), so each leads its own session and process group, and
 * the group holds what the command started: the other members of a
 * pipeline (`a | b`), its background jobs. Signalling only the leader would
 * leave those running, holding the provider's port or a lock. A descendant
 * that calls setsid itself leaves the group and is not signalled.
 */
import type { ChildProcess } from 'node:child_process';

/** While waiting for a group's last members after its leader exited. */
const GROUP_POLL_MS = 50;
/** How long members may take to vanish after the SIGKILL before stopGroup gives up on them. */
const AFTER_KILL_WAIT_MS = 1_000;

/**
 * Send `signal` to the child's whole process group, only while the child has
 * not exited as far as Node knows: until then its pid, which is the group's
 * id, names the group (a pid cannot be given to a new process while a group
 * still uses it as its id; reuse would need a full wrap of the pid space in
 * the moment between libuv reaping the child and the 'exit' event).
 * Returns whether a signal was sent.
 */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  return killGroup(pid, signal);
}

function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stop the child's group: SIGTERM now, SIGKILL to what is left of it after
 * `graceMs`. Resolves once the child has exited (`exited`) and no member of
 * its group is left (a member that ignores SIGTERM must not hold the port
 * the next provider binds), or AFTER_KILL_WAIT_MS after the SIGKILL if one
 * is still there (a zombie nobody reaps). After the leader exited the group
 * is watched by its id, which the kernel keeps from reuse while any member
 * lives; the SIGKILL is cancelled as soon as the group is seen empty.
 */
export async function stopGroup(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  const pgid = child.pid;
  signalGroup(child, 'SIGTERM');
  if (pgid === undefined) return exited;
  const giveUpAt = Date.now() + graceMs + AFTER_KILL_WAIT_MS;
  const kill = setTimeout(() => killGroup(pgid, 'SIGKILL'), graceMs);
  try {
    await exited;
    while (killGroup(pgid, 0) && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, GROUP_POLL_MS));
  } finally {
    clearTimeout(kill);
  }
}
