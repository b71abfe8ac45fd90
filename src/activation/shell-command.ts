/**
 * How the jumper runs an operator's shell command (`--start`, `exec:`): as
 * `/bin/sh -c COMMAND`, under util-linux `setpriv --pdeathsig SIGTERM` when
 * that exists (2.33 on; busybox's setpriv has no --pdeathsig). Then the
 * kernel signals the command if the jumper dies without running its exit
 * hooks (kill -9, the OOM killer), where nothing else would. setpriv execs
 * the shell, so the child's pid stays the command's; `exec` in the command
 * keeps it so past the shell too (the death signal survives exec, not fork,
 * nor the exec of a set-user-ID or file-capability binary such as sudo).
 * `jumper accept --exec` does not use this: its commands hold the client's
 * own connection, which outlives the acceptor, as inetd's children do.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];
const PROBE_TIMEOUT_MS = 2_000;

/**
 * The setpriv that takes --pdeathsig, or null: probed once (one short run of
 * `true`, off the event loop). A probe that could not run at all (EAGAIN,
 * EMFILE: the limits exec: streams meet) is not remembered: the next call
 * probes again instead of running without the death signal for good.
 */
let known: string | null | undefined;
let probing: Promise<string | null> | undefined;

/** setpriv's answer (its path, or null for no), or undefined when it could not be run at all. */
function probeSetpriv(): Promise<string | null | undefined> {
  const found = SETPRIV_PATHS.find((p) => existsSync(p));
  if (!found) return Promise.resolve(null);
  return new Promise((resolve) => {
    try {
      execFile(found, ['--pdeathsig', 'SIGTERM', '--', 'true'], { timeout: PROBE_TIMEOUT_MS }, (err) => {
        // EAGAIN, EMFILE, ENFILE: the spawn could not run now, ask again next time. Any other
        // failure (EACCES after a privilege drop, an exit status, the timeout's kill) is the answer.
        const code = (err as { code?: unknown } | null)?.code;
        if (code === 'EAGAIN' || code === 'EMFILE' || code === 'ENFILE') resolve(undefined);
        else resolve(err ? null : found);
      });
    } catch {
      resolve(undefined);
    }
  });
}

function pdeathsigSetpriv(): Promise<string | null> {
  if (known !== undefined) return Promise.resolve(known);
  probing ??= probeSetpriv().then((answer) => {
    probing = undefined;
    if (answer !== undefined) known = answer;
    return answer ?? null;
  });
  return probing;
}

/** File and arguments for spawn() that run `command` and end it with SIGTERM if the jumper dies. */
export async function shellArgv(command: string): Promise<[string, string[]]> {
  const setpriv = await pdeathsigSetpriv();
  return setpriv ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', '/bin/sh', '-c', command]] : ['/bin/sh', ['-c', command]];
}
