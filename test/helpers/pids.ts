/** Process checks for tests that start providers and commands. */
import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid still runs (signal 0 only checks). A zombie
 * counts as gone: an orphan's exit status waits for PID 1 to reap it, which
 * a container's init may never do.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself contain ') '.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // gone between the two checks
  }
}

/** SIGKILL a process a test started, if it is still there (teardown: nothing may outlive the test). */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}
