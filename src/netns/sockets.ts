/**
 * Sockets inside other network namespaces: the policy layer over the native
 * addon (src/native/binding.ts).
 *
 * A listener opened here lives in the target namespace (apps there reach it
 * at their own 127.0.0.1:PORT), and a connection opened here starts from the
 * target namespace (so it reaches a provider bound to *that* namespace's
 * 127.0.0.1) — while this process stays in its own namespace. This is what
 * nspipe did with setns(2).
 *
 * Entering another network namespace needs CAP_SYS_ADMIN (in practice: root).
 */
import { closeSync, fstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Address } from '../addr/address.js';
import { formatAddress } from '../addr/address.js';
import { removeStaleUnixSocket } from '../addr/listener.js';
import {
  ConnectFailedError,
  ConnectRefusedError,
  ConnectTimeoutError,
  InvalidArgumentError,
  JumperError,
  ListenError,
  NamespaceError,
  PermissionError,
  SocketError,
} from '../errors.js';
import { isNativeSystemError, loadNative } from '../native/binding.js';
import type { NativeFamily, NativeSystemError } from '../native/binding.js';
import { resolveNetns } from './designator.js';
import type { PidNamespacePin } from './pid-pin.js';
import { checkPositiveInteger } from '../options.js';

/** Same default as Node's net.Server.listen(). */
export const DEFAULT_BACKLOG = 511;
/** How long a connection inside a namespace may take before ConnectTimeoutError. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

const MAX_PORT = 65535;
/** sun_path is 108 bytes including the terminating NUL (unix(7)). */
const MAX_UNIX_PATH_BYTES = 107;
/** The one host name accepted inside a namespace, and what it means there. */
const LOCALHOST = 'localhost';
const LOCALHOST_V4 = '127.0.0.1';

export interface ListenInNetnsOptions {
  /** listen(2) backlog; default {@link DEFAULT_BACKLOG}. */
  backlog?: number;
  /**
   * Bind a Unix socket file under this umask (0..0o777), e.g. a tight one
   * before the exact mode is set. Only the binding thread's umask changes,
   * never the process's. Default: the process's umask.
   */
  umask?: number;
}

export interface ConnectInNetnsOptions {
  /** Connect timeout in milliseconds; default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Keep our write side open after the peer ends (net.Socket allowHalfOpen); default false. */
  allowHalfOpen?: boolean;
  /** For a pid:N designator: refuse a namespace other than the first one this pin saw (PID reuse). */
  pin?: PidNamespacePin;
}

export interface ListenServerInNetnsOptions extends ListenInNetnsOptions {
  /** Passed to net.createServer (e.g. allowHalfOpen, pauseOnConnect). */
  server?: net.ServerOpts;
}

type Operation = 'listen' | 'connect';

interface Target {
  family: NativeFamily;
  host: string;
  port: number;
}

interface Context {
  operation: Operation;
  designator: string;
  nsPath: string;
  address: Address;
  timeoutMs?: number;
}

function describeAddress(address: Address): string {
  if (address.kind === 'unix' && address.path.startsWith('\0')) return `@${address.path.slice(1)} (abstract)`;
  return formatAddress(address);
}

/**
 * Check a --connect-netns designator and target once, at start: both are
 * fixed, so a bad one (a host name, pid:0) is refused then rather than
 * failing every stream. Whether the namespace exists is left to each connect
 * (it may come and go with its container).
 * @throws InvalidArgumentError
 */
export function checkNetnsTarget(netns: string, address: Address): void {
  resolveNetns(netns);
  toTarget(address);
}

/**
 * Map an Address to what the addon takes. Host names would be resolved in
 * *our* namespace, which says nothing about the target's, so only IP
 * literals are accepted (plus 'localhost', which is loopback everywhere).
 */
function toTarget(address: Address): Target {
  if (address.kind === 'unix') {
    const bytes = Buffer.byteLength(address.path);
    if (bytes === 0 || bytes > MAX_UNIX_PATH_BYTES) {
      throw new InvalidArgumentError(`unix socket path must be 1..${MAX_UNIX_PATH_BYTES} bytes: "${address.path}"`);
    }
    return { family: 'unix', host: address.path, port: 0 };
  }
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > MAX_PORT) {
    throw new InvalidArgumentError(`port out of range in ${formatAddress(address)}`);
  }
  const host = address.host === LOCALHOST ? LOCALHOST_V4 : address.host;
  switch (net.isIP(host)) {
    case 4:
      return { family: 'ipv4', host, port: address.port };
    case 6:
      return { family: 'ipv6', host, port: address.port };
    default:
      throw new InvalidArgumentError(
        `targets inside a network namespace are given by address, not name: "${address.host}" would be resolved ` +
          `in jumper's own namespace; use an IP literal such as 127.0.0.1 or [::1]`,
      );
  }
}

function where(context: Context): string {
  return `network namespace ${context.designator} (${context.nsPath})`;
}

function fromSystemError(err: NativeSystemError, context: Context): JumperError {
  const options = { cause: err, errno: err.code, syscall: err.syscall };
  const detail = `${err.syscall} ${err.code}`;
  const address = describeAddress(context.address);

  if (err.syscall === 'open' || err.syscall === 'setns') {
    if (err.code === 'EPERM' || err.code === 'EACCES') {
      return new PermissionError(
        `entering ${where(context)} needs CAP_SYS_ADMIN (run as root): ${detail}`,
        options,
      );
    }
    if (err.syscall === 'open' && err.code === 'ENOENT') {
      return new NamespaceError(`no such network namespace: ${context.designator} (${context.nsPath})`, options);
    }
    if (err.syscall === 'setns' && err.code === 'EINVAL') {
      return new NamespaceError(`not a network namespace: ${context.designator} (${context.nsPath})`, options);
    }
    return new NamespaceError(`cannot enter ${where(context)}: ${detail}`, options);
  }

  if (context.operation === 'connect') {
    // A missing Unix path is nobody listening, as for the plain dialer: `_refused`
    // (so a --start provider still binding is waited for, not failed at once).
    if (err.code === 'ECONNREFUSED' || (err.syscall === 'connect' && err.code === 'ENOENT')) {
      return new ConnectRefusedError(`connection refused by ${address} in ${where(context)}`, options);
    }
    if (err.code === 'ETIMEDOUT') {
      return new ConnectTimeoutError(
        `connecting to ${address} in ${where(context)} timed out after ${context.timeoutMs ?? '?'} ms`,
        options,
      );
    }
    if (err.syscall === 'connect') {
      // EHOSTUNREACH, ENETUNREACH, ...: `_unreachable`, the reason the plain dialer gives.
      return new ConnectFailedError(`cannot connect to ${address} in ${where(context)}: ${detail}`, { ...options, reason: 'connect_unreachable' });
    }
  } else if (err.syscall === 'bind' || err.syscall === 'listen' || err.syscall === 'setsockopt') {
    const hint = err.code === 'EADDRINUSE' && context.address.kind === 'unix' ? ' (remove a stale socket file?)' : '';
    return new ListenError(`cannot listen on ${address} in ${where(context)}: ${detail}${hint}`, options);
  }
  return new SocketError(`${context.operation} ${address} in ${where(context)} failed: ${detail}`, options);
}

function isAddressInUse(err: unknown): boolean {
  return isNativeSystemError(err) && err.code === 'EADDRINUSE' && err.syscall === 'bind';
}

/** Everything the addon throws or rejects with becomes a JumperError. */
function toJumperError(err: unknown, context: Context): JumperError {
  if (err instanceof JumperError) return err;
  if (isNativeSystemError(err)) return fromSystemError(err, context);
  // TypeError/RangeError from the binding's own validation.
  const message = err instanceof Error ? err.message : String(err);
  return new InvalidArgumentError(`${context.operation} in ${where(context)}: ${message}`, { cause: err });
}

/**
 * Open a listening socket inside a network namespace.
 * @param netns    namespace designator: NAME, /path/to/ns or pid:N
 * @param address  where to listen *inside* that namespace (TCP host must be an IP literal or 'localhost')
 * @param options  backlog (default {@link DEFAULT_BACKLOG})
 * @returns the listening fd (nonblocking, close-on-exec); the caller owns it
 *   (see {@link listenServerInNetns} for a ready net.Server)
 * @throws (rejects) InvalidArgumentError for a bad designator/address/option,
 *   NativeUnavailableError when the addon is not built or disabled,
 *   PermissionError without CAP_SYS_ADMIN, NamespaceError when the namespace
 *   does not exist or is not a network namespace, ListenError when bind/listen
 *   fail (EADDRINUSE, EADDRNOTAVAIL, ...), SocketError otherwise.
 */
export async function openListenerInNetns(
  netns: string,
  address: Address,
  options: ListenInNetnsOptions = {},
): Promise<number> {
  const nsPath = resolveNetns(netns);
  const target = toTarget(address);
  const backlog = options.backlog ?? DEFAULT_BACKLOG;
  if (!Number.isInteger(backlog) || backlog < 0) throw new InvalidArgumentError(`backlog must be an integer >= 0, got ${backlog}`);
  const umask = options.umask ?? -1;
  if (!Number.isInteger(umask) || umask < -1 || umask > 0o777) throw new InvalidArgumentError(`umask must be an integer in 0..0o777, got ${umask}`);
  const native = loadNative();
  const context: Context = { operation: 'listen', designator: netns, nsPath, address };
  const listen = () => native.listenInNetns(nsPath, target.family, target.host, target.port, backlog, umask);
  try {
    return await listen();
  } catch (err) {
    // As for a plain listener: a socket file nobody accepts on is left over
    // from a crash. Path sockets are not namespaced, so the host can probe it.
    if (address.kind === 'unix' && !address.path.startsWith('\0') && isAddressInUse(err) && (await removeStaleUnixSocket(address.path))) {
      try {
        return await listen();
      } catch (again) {
        throw toJumperError(again, context);
      }
    }
    throw toJumperError(err, context);
  }
}

/**
 * Connect from inside a network namespace.
 * @param netns    namespace designator: NAME, /path/to/ns or pid:N
 * @param address  the target as seen *from inside* that namespace
 *   (TCP host must be an IP literal or 'localhost'; Unix paths are not
 *   namespaced, abstract names starting with NUL are)
 * @param options  timeoutMs (default {@link DEFAULT_CONNECT_TIMEOUT_MS}), allowHalfOpen
 * @returns a connected net.Socket (reads, writes and half-close work as for net.connect)
 * @throws (rejects) InvalidArgumentError, NativeUnavailableError, PermissionError,
 *   NamespaceError as for {@link openListenerInNetns}; ConnectRefusedError
 *   (ECONNREFUSED), ConnectTimeoutError (no answer within timeoutMs),
 *   ConnectFailedError (other connect(2) errors: ENETUNREACH, ENOENT, ...),
 *   SocketError otherwise.
 */
export async function connectInNetns(
  netns: string,
  address: Address,
  options: ConnectInNetnsOptions = {},
): Promise<net.Socket> {
  const nsPath = resolveNetns(netns);
  const target = toTarget(address);
  const timeoutMs = checkPositiveInteger(options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 'timeoutMs');
  const native = loadNative();
  const context: Context = { operation: 'connect', designator: netns, nsPath, address, timeoutMs };
  options.pin?.check();
  let fd: number;
  try {
    fd = await native.connectInNetns(nsPath, target.family, target.host, target.port, timeoutMs);
  } catch (err) {
    throw toJumperError(err, context);
  }
  const inode = socketInode(fd);
  try {
    return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: options.allowHalfOpen ?? false });
  } catch (err) {
    closeIfStillOurs(fd, inode);
    throw new SocketError(`cannot wrap the connection to ${describeAddress(address)} in ${where(context)}`, { cause: err });
  }
}

/** The inode of the socket behind `fd`, to recognise it later. */
function socketInode(fd: number): number {
  return fstatSync(fd).ino;
}

/**
 * Close `fd` only if it is still the socket we created. When Node fails
 * half-way through adopting a descriptor it may already have closed it,
 * and the number may since have been reused: never close someone else's fd.
 */
function closeIfStillOurs(fd: number, inode: number): void {
  try {
    if (fstatSync(fd).ino === inode) closeSync(fd);
  } catch {
    // EBADF: Node already closed it.
  }
}

/** Remove the socket file a Unix listener created (path sockets only; abstract ones vanish by themselves). */
function unlinkSocketFile(address: Address): void {
  if (address.kind !== 'unix' || address.path.startsWith('\0')) return;
  try {
    unlinkSync(address.path);
  } catch {
    // Already gone or replaced by someone with the rights to: not ours to report.
  }
}

/**
 * Listen inside a network namespace and serve connections with a net.Server.
 * A Unix socket file created here is removed when the server closes.
 * @param netns    namespace designator: NAME, /path/to/ns or pid:N
 * @param address  where to listen inside that namespace
 * @param options  backlog, and `server` options for net.createServer
 * @param connectionListener  attached to 'connection'
 * @returns the listening server (server.address() reports the bound address/port)
 * @throws (rejects) as {@link openListenerInNetns}; ListenError if Node
 *   refuses the descriptor.
 */
export async function listenServerInNetns(
  netns: string,
  address: Address,
  options: ListenServerInNetnsOptions = {},
  connectionListener?: (socket: net.Socket) => void,
): Promise<net.Server> {
  const backlog = options.backlog ?? DEFAULT_BACKLOG;
  const fd = await openListenerInNetns(netns, address, { backlog });
  const inode = socketInode(fd);
  const server = net.createServer(options.server ?? {}, connectionListener);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd, backlog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    closeIfStillOurs(fd, inode);
    unlinkSocketFile(address);
    throw new ListenError(`cannot serve ${describeAddress(address)} in network namespace ${netns}`, { cause: err });
  }
  server.once('close', () => unlinkSocketFile(address));
  return server;
}
