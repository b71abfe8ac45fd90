/**
 * Inherited listening sockets: systemd's sd_listen_fds protocol (also what
 * systemd-socket-activate speaks) and plain `fd:N`.
 *
 *   LISTEN_PID     must equal our PID, else the variables are for someone else
 *   LISTEN_FDS     number of descriptors, starting at SD_LISTEN_FDS_START (3)
 *   LISTEN_FDNAMES colon-separated names (FileDescriptorName=), optional
 *
 * After reading them we unset the variables, as sd_listen_fds(unset=1) does,
 * so child processes (e.g. a --start provider) do not believe they are meant.
 */
import { fstatSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';

export const SD_LISTEN_FDS_START = 3;

export interface InheritedFd {
  fd: number;
  /** FileDescriptorName, or 'unknown' when systemd gave none. */
  name: string;
}

/**
 * The descriptors systemd passed to this process. Empty when LISTEN_PID names
 * another process or nothing was passed.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid, unset = true): InheritedFd[] {
  const count = Number(env.LISTEN_FDS ?? 0);
  const forUs = env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === pid;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  if (unset) {
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
  }
  if (!forUs || !Number.isInteger(count) || count <= 0) return [];
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }));
}

let cached: InheritedFd[] | undefined;

/** {@link listenFds} for this process, read (and unset) once. */
export function inheritedFds(): InheritedFd[] {
  cached ??= listenFds();
  return cached;
}

/** A listen specification that refers to an inherited descriptor. */
export type InheritedSpec = { kind: 'systemd'; name?: string } | { kind: 'fd'; fd: number };

/** Recognise `systemd`, `systemd:NAME` and `fd:N`; anything else is an address (undefined). */
export function parseInheritedSpec(text: string): InheritedSpec | undefined {
  if (text === 'systemd') return { kind: 'systemd' };
  if (text.startsWith('systemd:')) {
    const name = text.slice('systemd:'.length);
    if (!name) throw new InvalidArgumentError('--listen systemd:NAME needs a name (FileDescriptorName=)');
    return { kind: 'systemd', name };
  }
  if (text.startsWith('fd:')) {
    const n = text.slice(3);
    if (!/^\d+$/.test(n)) throw new InvalidArgumentError(`--listen ${text}: expected fd:N with N a descriptor number`);
    return { kind: 'fd', fd: Number(n) };
  }
  return undefined;
}

function checkSocket(fd: number, what: string): void {
  let isSocket = false;
  try {
    isSocket = fstatSync(fd).isSocket();
  } catch (cause) {
    throw new InvalidArgumentError(`${what}: descriptor ${fd} is not open`, { cause });
  }
  if (!isSocket) throw new InvalidArgumentError(`${what}: descriptor ${fd} is not a socket`);
}

/**
 * Resolve a spec to descriptors. `systemd` takes all passed sockets (jumper
 * listens on each); `systemd:NAME` the ones with that FileDescriptorName.
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) when nothing matches.
 */
export function resolveInherited(spec: InheritedSpec, inherited: InheritedFd[]): InheritedFd[] {
  if (spec.kind === 'fd') {
    checkSocket(spec.fd, `--listen fd:${spec.fd}`);
    return [{ fd: spec.fd, name: `fd:${spec.fd}` }];
  }
  const what = spec.name ? `--listen systemd:${spec.name}` : '--listen systemd';
  if (inherited.length === 0) {
    throw new InvalidArgumentError(`${what}: no sockets were passed by systemd (LISTEN_FDS/LISTEN_PID not set for this process)`);
  }
  const chosen = spec.name ? inherited.filter((f) => f.name === spec.name) : inherited;
  if (chosen.length === 0) {
    const names = inherited.map((f) => f.name).join(', ');
    throw new InvalidArgumentError(`${what}: no passed socket has that name (passed: ${names})`);
  }
  for (const f of chosen) checkSocket(f.fd, what);
  return chosen;
}
