/**
 * `pid:N` names whatever network namespace process N is in now. Once that
 * process has exited and its PID is reused, that is another process's
 * namespace, often the host's, and connections for a container's provider
 * would quietly go there. A PidNamespacePin remembers the first namespace it
 * sees behind a designator (the device and inode of /proc/N/ns/net, which
 * name the namespace itself) and refuses any other one after that.
 */
import { statSync } from 'node:fs';
import { NamespaceError } from '../errors.js';
import { PID_PREFIX, resolveNetns } from './designator.js';

export class PidNamespacePin {
  #identity: string | undefined;

  constructor(
    readonly designator: string,
    readonly nsPath: string,
  ) {}

  /** A pin for `designator` when it names a namespace through a process id (the only kind a reused PID can change), else undefined. */
  static for(designator: string): PidNamespacePin | undefined {
    return designator.startsWith(PID_PREFIX) ? new PidNamespacePin(designator, resolveNetns(designator)) : undefined;
  }

  /**
   * Before entering: pin the namespace on first sight, refuse a different one later.
   * A file that cannot be read is left to the open that follows (it reports ENOENT and EACCES as they are).
   * @throws NamespaceError (reason netns_error) when the process now lives in another namespace
   */
  check(): void {
    let identity: string;
    try {
      const st = statSync(this.nsPath, { bigint: true });
      identity = `${st.dev}:${st.ino}`;
    } catch {
      return;
    }
    if (this.#identity === undefined) {
      this.#identity = identity;
    } else if (identity !== this.#identity) {
      throw new NamespaceError(
        `${this.designator} is now in another network namespace than before (${this.nsPath}): the process exited and its PID was reused, or it moved; restart the jumper for the new process`,
      );
    }
  }
}
