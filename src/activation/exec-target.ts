/**
 * `--connect exec:COMMAND`: each stream becomes the stdin and stdout of a
 * fresh `/bin/sh -c COMMAND` (inetd style, like socat EXEC or spiped+inetd),
 * under `setpriv --pdeathsig` where available (shell-command.ts).
 *
 * The child gets one end of a connected Unix socket as both fd 0 and fd 1;
 * the jumper keeps the other end as an ordinary net.Socket, so the tunnel's
 * pipes, half-close and resets work unchanged: our EOF is the child's stdin
 * EOF, and the child's exit ends the stream cleanly. Its stderr goes to the log,
 * tagged `provider`. The child shares that socket's O_NONBLOCK flag (and
 * libuv clears it for a child's stdio): the jumper reads its copy only after
 * the exit, non-blocking again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Dialer } from '../addr/dial.js';
import { ConnectFailedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { setNonBlocking } from '../native/fd-flags.js';
import { keepInJs } from '../proto/js-data-path.js';
import { signalGroup } from './child-group.js';
import { logCommandOutput } from './command-output.js';
import { shellArgv } from './shell-command.js';
import { connectedPair } from './socket-pair.js';

export const EXEC_PREFIX = 'exec:';

/** Commands still running, SIGTERMed when the process exits (a stream's close may not get to run first). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackUntilExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) signalGroup(c, 'SIGTERM');
  });
}

/**
 * A dialer that starts `command` per stream.
 * @throws (from the dialer) ConnectFailedError with reason `${label}_unreachable` when the command cannot start.
 */
export function createExecDialer(command: string, options: { logger: Logger; label: string }): Dialer {
  const log = options.logger.child({ provider: command });
  return async () => {
    // First: nothing to clean up if it waits or fails.
    const [file, args] = await shellArgv(command);
    let pair;
    try {
      pair = await connectedPair();
    } catch (cause) {
      throw new ConnectFailedError(`cannot make a socket pair for ${command}`, { cause, reason: `${options.label}_unreachable` });
    }
    const { ours, theirs } = pair;
    let child;
    try {
      // Its own session and process group (libuv's detached is setsid), as for --start providers:
      // Ctrl-C stops the jumper, which drains first. It has no controlling terminal.
      child = spawn(file, args, { stdio: [theirs, theirs, 'pipe'], detached: true });
    } catch (cause) {
      ours.destroy();
      theirs.destroy();
      throw new ConnectFailedError(`cannot start ${command}`, { cause, reason: `${options.label}_unreachable` });
    }
    // fork() or a pipe failing (EAGAIN: task limit; EMFILE) is reported as a later 'error' event, not a
    // throw (and with EMFILE there is no stderr pipe): wait for the outcome, so such a stream fails now,
    // with its reason, instead of hanging with nobody at the other end.
    const spawned = child;
    const failed = await new Promise<Error | undefined>((resolve) => {
      spawned.once('spawn', () => resolve(undefined));
      spawned.once('error', resolve);
    });
    if (failed) {
      ours.destroy();
      theirs.destroy();
      log.warn({ err: failed.message }, 'provider command failed to start');
      throw new ConnectFailedError(`cannot start ${command}: ${failed.message}`, { cause: failed, reason: `${options.label}_unreachable` });
    }
    trackUntilExit(child);
    // We keep our copy of the child's end: when the command exits without
    // reading all its input, closing that end would reset the stream. Instead
    // we discard what it left unread and close it with a FIN: a clean end.
    theirs.on('error', () => {});
    child.once('exit', () => {
      // libuv made the child's stdio blocking, and the flag is the socket's: a
      // read that emptied it would then block the whole event loop. Without the
      // addon, close it (a reset if input was left unread) rather than risk that.
      let nonBlocking = false;
      try {
        nonBlocking = setNonBlocking(theirs, true);
      } catch {
        /* already closed: the stream ended first */
      }
      if (!nonBlocking) {
        theirs.destroy();
        return;
      }
      theirs.on('data', () => {});
      theirs.resume();
      theirs.end();
    });
    if (child.stderr) logCommandOutput(child.stderr, log, { stream: 'stderr' });
    child.once('exit', (code, signal) => log.debug({ code, signal }, 'provider command exited'));
    child.on('error', (err) => {
      log.warn({ err: err.message }, 'provider command failed');
      ours.destroy(err);
    });
    // If the stream ends first, do not leave the command (and what it started) running forever.
    ours.once('close', () => {
      theirs.destroy();
      signalGroup(child, 'SIGTERM');
    });
    // Its close must reach the child handling above: keep it off the native pump.
    return keepInJs(ours);
  };
}
