/**
 * Network namespace designators, as operators write them:
 *
 *   NAME              a named namespace made by `ip netns add NAME`
 *                     (the file /var/run/netns/NAME)
 *   /abs/path         a namespace file as is: /proc/PID/ns/net, a bind mount
 *   pid:N             the namespace of process N (/proc/N/ns/net)
 *
 * Only the syntax is checked here; whether the file exists and is a network
 * namespace is found out when it is entered (see sockets.ts).
 */
import { InvalidArgumentError } from '../errors.js';

/** Where `ip netns add` puts named namespaces (iproute2's NETNS_RUN_DIR). */
export const NETNS_RUN_DIR = '/var/run/netns';

export const PID_PREFIX = 'pid:';
/** Linux's PID_MAX_LIMIT (2^22): no pid can be larger. */
const PID_MAX_LIMIT = 4_194_304;
/** NAME_MAX: a named namespace is one file name. */
const NAME_MAX = 255;
/** Letters, digits, '.', '_', '-', '@', '+'; not starting with '.' or '-' (so never '.', '..' or an option). */
const NAME_PATTERN = /^[A-Za-z0-9_@+][A-Za-z0-9._@+-]*$/;
const PID_PATTERN = /^[1-9][0-9]*$/;

/**
 * Turn a designator into the path of the namespace file.
 * @param designator  `NAME`, an absolute path, or `pid:N` (see module docs)
 * @returns the path to open and pass to setns(2)
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) for an empty or
 *   malformed designator: a relative path, a name with '/' or other
 *   characters `ip netns` names do not use, a bad or out-of-range pid, NUL bytes.
 */
export function resolveNetns(designator: string): string {
  if (typeof designator !== 'string' || designator.length === 0) {
    throw new InvalidArgumentError('empty network namespace: expected NAME, /path/to/ns or pid:N');
  }
  if (designator.includes('\0')) {
    throw new InvalidArgumentError('network namespace designator contains a NUL byte');
  }
  if (designator.startsWith('/')) return designator;

  if (designator.startsWith(PID_PREFIX)) {
    const pidText = designator.slice(PID_PREFIX.length);
    if (!PID_PATTERN.test(pidText) || Number(pidText) > PID_MAX_LIMIT) {
      throw new InvalidArgumentError(
        `bad network namespace "${designator}": pid:N needs a process id between 1 and ${PID_MAX_LIMIT}`,
      );
    }
    return `/proc/${pidText}/ns/net`;
  }

  if (designator.length > NAME_MAX || !NAME_PATTERN.test(designator)) {
    throw new InvalidArgumentError(
      `bad network namespace "${designator}": expected a name from "ip netns list", an absolute path (/proc/PID/ns/net) or pid:N`,
    );
  }
  return `${NETNS_RUN_DIR}/${designator}`;
}
