/**
 * How the jumper runs an operator's shell command (`--start`, `exec:`): as
 * `/bin/sh -c COMMAND`, under util-linux `setpriv --pdeathsig SIGTERM` when
 * that exists (2.33 on; busybox's setpriv has no --pdeathsig). Then the
 * kernel signals the command if the jumper dies without running its exit
 * hooks (kill -9, the OOM killer), where nothing else would. setpriv execs
 * the shell, so the child's pid stays the command's; `exec` in the command
 * keeps it so past the shell too (the death signal survives exec, not fork).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];
const PROBE_TIMEOUT_MS = 2_000;

/** The setpriv that takes --pdeathsig, or null; probed once (one short run of `true`, off the event loop). */
let probe: Promise<string | null> | undefined;

function pdeathsigSetpriv(): Promise<string | null> {
  probe ??= new Promise((resolve) => {
    const found = SETPRIV_PATHS.find((p) => existsSync(p));
    if (!found) {
      resolve(null);
      return;
    }
    execFile(found, ['--pdeathsig', 'SIGTERM', '--', 'true'], { timeout: PROBE_TIMEOUT_MS }, (err) => resolve(err ? null : found));
  });
  return probe;
}

/** File and arguments for spawn() that run `command` and end it with SIGTERM if the jumper dies. */
export async function shellArgv(command: string): Promise<[string, string[]]> {
  const setpriv = await pdeathsigSetpriv();
  return setpriv ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', '/bin/sh', '-c', command]] : ['/bin/sh', ['-c', command]];
}
