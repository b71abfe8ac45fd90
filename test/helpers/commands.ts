/** Whether a system command the test drives is installed (it ran with `args` and exited 0). */
import { execFileSync } from 'node:child_process';

export function hasCommand(name: string, args: readonly string[] = ['--version']): boolean {
  try {
    execFileSync(name, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
