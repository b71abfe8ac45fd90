/**
 * Outgoing connections with a timeout and typed errors.
 */
import net from 'node:net';
import { ConnectFailedError, ConnectRefusedError, ConnectTimeoutError, JumperError, withReason } from '../errors.js';
import { PidNamespacePin } from '../netns/pid-pin.js';
import { connectInNetns } from '../netns/sockets.js';
import { formatAddress, type Address } from './address.js';
import { enableKeepAlive } from './keepalive.js';

export interface DialOptions {
  connectTimeoutMs: number;
  keepAlive: boolean;
  /** Who is being dialled, for error reasons: 'provider' gives 'provider_refused'. */
  label: string;
}

/** Opens one new connection each time it is called. */
export type Dialer = () => Promise<net.Socket>;

/** Map a connect failure to a typed error whose reason names the peer. */
export function connectError(err: unknown, target: string, label: string): JumperError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const opts = { cause: err, errno: code, syscall: 'connect' };
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOENT': // Unix socket path missing: nobody listens there.
      return new ConnectRefusedError(`${label} ${target} refused the connection (${code})`, { ...opts, reason: `${label}_refused` });
    case 'ETIMEDOUT':
      return new ConnectTimeoutError(`${label} ${target} did not answer in time`, { ...opts, reason: `${label}_timeout` });
    default:
      return new ConnectFailedError(`cannot connect to ${label} ${target} (${code})`, { ...opts, reason: `${label}_unreachable` });
  }
}

/** Apply the socket options every tunnelled socket gets. */
export function tuneSocket(socket: net.Socket, options: Pick<DialOptions, 'keepAlive'>): void {
  // Records and small requests must not wait for Nagle.
  if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
  if (options.keepAlive) enableKeepAlive(socket);
}

/**
 * A dialer for `address`. A host name is resolved anew by every call, so a
 * changed DNS record takes effect for the next stream.
 */
export function createDialer(address: Address, options: DialOptions): Dialer {
  const target = formatAddress(address);
  const connectOptions: net.NetConnectOpts =
    address.kind === 'unix'
      ? { path: address.path, allowHalfOpen: true }
      : { host: address.host, port: address.port, allowHalfOpen: true };
  return () =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(connectOptions);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(connectError(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }), target, options.label));
      }, options.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        tuneSocket(socket, options);
        resolve(socket);
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(connectError(err, target, options.label));
      };
      socket.once('error', onError);
    });
}

/**
 * A dialer whose sockets are created inside network namespace `netns`
 * (a name, a path or pid:N). The address must be an IP literal or a Unix
 * path: names would be resolved in the jumper's own namespace. For pid:N,
 * every stream goes to the namespace the first one found (`pin`, shared by
 * the dialers of one balanced target): a reused PID is refused.
 */
export function createNetnsDialer(netns: string, address: Address, options: DialOptions, pin: PidNamespacePin | undefined): Dialer {
  return async () => {
    let socket: net.Socket;
    try {
      socket = await connectInNetns(netns, address, { timeoutMs: options.connectTimeoutMs, allowHalfOpen: true, ...(pin ? { pin } : {}) });
    } catch (err) {
      if (err instanceof JumperError && err.reason.startsWith('connect_')) {
        throw withReason(err, `${options.label}_${err.reason.slice('connect_'.length)}`);
      }
      throw err;
    }
    tuneSocket(socket, options);
    return socket;
  };
}
