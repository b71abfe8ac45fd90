/**
 * `pid:N` names whatever network namespace process N is in now. Once that
 * process has exited and its PID is reused, that is another process's
 * namespace, often the host's, and connections for a container's provider
 * would quietly go there. A PidNamespacePin remembers the namespace behind
 * a designator when the jumper is set up (or, if process N is not there
 * yet, when a stream first finds one): the device and inode of
 * /proc/N/ns/net, which name the namespace itself. It refuses any other one
 * after that.
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

  /**
   * A pin for `designator` when it names a namespace through a process id (the only kind a reused PID can change),
   * else undefined. Pinned at once when process N exists, so that a PID reused before the first stream is caught too;
   * otherwise on the first stream's sight.
   */
  static for(designator: string): PidNamespacePin | undefined {
    if (!designator.startsWith(PID_PREFIX)) return undefined;
    const pin = new PidNamespacePin(designator, resolveNetns(designator));
    pin.check();
    return pin;
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
