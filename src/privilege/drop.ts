/**
 * Least privilege: after every listening socket is bound and every namespace
 * entered, give up root for good (supplementary groups, then gid, then uid;
 * the order matters: once the uid is gone, the groups can no longer change).
 *
 * What needs root later cannot work after the drop, so it is refused up
 * front with a message naming the option: --connect-netns (setns for every
 * new connection) and, on a reload, new listeners on privileged ports, in
 * other namespaces, or with a Unix socket owner.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, PermissionError } from '../errors.js';

/** Who to become. */
export interface DropTarget {
  user: string;
  uid: number;
  gid: number;
}

/** The first port an unprivileged process may bind (Linux default 1024). */
export function unprivilegedPortStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
  } catch {
    return 1024;
  }
}

/** getent (NSS: files, LDAP, systemd-userdb ...) with /etc/* as a fallback. */
function lookup(database: 'passwd' | 'group', name: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [database, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
    if (line) return line.split(':');
  } catch {
    /* no getent, or not found: try the file */
  }
  try {
    const numeric = /^\d+$/.test(name);
    for (const line of readFileSync(`/etc/${database}`, 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields[0] === name || (numeric && fields[2] === name)) return fields;
    }
  } catch {
    /* no file */
  }
  return undefined;
}

/**
 * Resolve `user` (name or uid) and `group` (name or gid; default: the user's
 * primary group).
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) for an unknown user or group.
 */
export function resolveDropTarget(user: string, group?: string): DropTarget {
  const pw = lookup('passwd', user);
  let uid: number;
  let name = user;
  let gid: number | undefined;
  if (pw) {
    name = pw[0]!;
    uid = Number(pw[2]);
    gid = Number(pw[3]);
  } else if (/^\d+$/.test(user)) {
    uid = Number(user);
  } else {
    throw new InvalidArgumentError(`--user ${user}: no such user`);
  }
  if (group !== undefined) {
    const gr = lookup('group', group);
    if (gr) gid = Number(gr[2]);
    else if (/^\d+$/.test(group)) gid = Number(group);
    else throw new InvalidArgumentError(`--group ${group}: no such group`);
  }
  if (gid === undefined) throw new InvalidArgumentError(`--user ${user} has no passwd entry: give --group too`);
  if (uid === 0) throw new InvalidArgumentError('--user must name an unprivileged user, not root');
  return { user: name, uid, gid };
}

/** Options that need root after the drop; each entry names the option and why. */
export interface PrivilegeNeeds {
  connectNetns?: string | undefined;
}

/**
 * Refuse a configuration that would need root after dropping privileges.
 * @throws InvalidArgumentError naming the option.
 */
export function checkDroppable(where: string, needs: PrivilegeNeeds): void {
  if (needs.connectNetns !== undefined) {
    throw new InvalidArgumentError(
      `${where}: --connect-netns enters the namespace (CAP_SYS_ADMIN) for every new connection, so it cannot run after --user drops root; ` +
        'run a `jumper forward --listen-netns` inside that namespace instead, or leave out --user',
    );
  }
}

/**
 * Become `target` for good.
 * @throws PermissionError (JUMPER_ERR_PERMISSION) when not root or a step fails, InvalidArgumentError when the
 *         platform cannot change credentials.
 */
export function dropPrivileges(target: DropTarget): void {
  if (typeof process.setuid !== 'function' || typeof process.setgid !== 'function' || typeof process.setgroups !== 'function') {
    throw new InvalidArgumentError('--user/--group need a POSIX platform');
  }
  if (process.geteuid?.() !== 0) {
    if (process.geteuid?.() === target.uid && process.getegid?.() === target.gid) return; // already there
    throw new PermissionError(`--user ${target.user}: only root can change user (running as uid ${process.geteuid?.()})`);
  }
  try {
    // Supplementary groups first: the user's own (initgroups), else none but the target gid.
    try {
      (process as unknown as { initgroups(user: string, extra: number): void }).initgroups(target.user, target.gid);
    } catch {
      process.setgroups([target.gid]);
    }
    process.setgid(target.gid);
    process.setuid(target.uid);
  } catch (err) {
    throw new PermissionError(`cannot drop privileges to ${target.user} (${target.uid}:${target.gid}): ${(err as Error).message}`, {
      cause: err,
      errno: (err as NodeJS.ErrnoException).code,
      syscall: 'setuid',
    });
  }
  // Belt and braces: regaining root must now be impossible.
  let regained = false;
  try {
    process.setuid(0);
    regained = true;
  } catch {
    /* expected */
  }
  if (regained || process.getuid!() !== target.uid || process.geteuid!() !== target.uid || process.getgid!() !== target.gid) {
    throw new PermissionError(`privilege drop to ${target.user} did not stick`);
  }
}

/** Mode of a Unix listener given an owner but no mode: owner and group may connect. */
export const OWNED_SOCKET_MODE = 0o660;

/** Parse `user[:group]` for a Unix socket owner into numeric ids. */
export function resolveOwner(spec: string): { uid: number; gid: number } {
  const [user, group] = spec.split(':');
  if (!user) throw new InvalidArgumentError(`--listen-owner ${spec}: expected user[:group]`);
  const t = resolveDropTargetAllowRoot(user, group || undefined);
  return { uid: t.uid, gid: t.gid };
}

function resolveDropTargetAllowRoot(user: string, group: string | undefined): DropTarget {
  try {
    return resolveDropTarget(user, group);
  } catch (err) {
    // root:group is a fine owner for a socket, only not a user to drop to.
    if (user === 'root' || user === '0') return { user: 'root', uid: 0, gid: group ? resolveDropTarget('nobody', group).gid : 0 };
    throw err;
  }
}
