/**
 * Connection hand-off over a Unix socket with SCM_RIGHTS (socketbox-style):
 * instead of connecting to the provider, the jumper passes a connected socket
 * to a process listening on a Unix socket, which may live in another network
 * namespace (reached through a shared directory) or have no network at all.
 *
 * Protocol v1, per stream: connect to the receiver's path, send one message
 * whose payload is the byte 0x01 with SCM_RIGHTS carrying one descriptor,
 * close. The descriptor is blocking, as accept(2) returns one. Receivers:
 * `jumper accept`, the LD_PRELOAD shim in native/preload/, or any program
 * that does recvmsg(2).
 */
import { closeSync } from 'node:fs';
import net from 'node:net';
import type { Dialer } from '../addr/dial.js';
import { ConnectFailedError, SocketError, type JumperError } from '../errors.js';
import { loadNative } from '../native/binding.js';
import { setNonBlocking } from '../native/fd-flags.js';
import { socketFd } from '../native/handover.js';
import type { Conn } from '../proto/conn.js';
import { connectedPair, type PairFactory } from './socket-pair.js';

export const HANDOFF_PREFIX = 'handoff:';
/** How long a receiver waits for the descriptor after a sender connected. */
const RECEIVE_TIMEOUT_MS = 2_000;
const RECEIVE_POLL_MS = 2;

function handoffError(err: unknown, path: string, label: string): JumperError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const refused = code === 'ECONNREFUSED' || code === 'ENOENT';
  return new ConnectFailedError(`hand-off to ${path} failed: ${refused ? 'no receiver is listening' : code}`, {
    cause: err,
    errno: code,
    syscall: 'sendmsg',
    reason: refused ? `${label}_refused` : `${label}_unreachable`,
  });
}

/**
 * Pass the socket's descriptor to the receiver at `path`. The caller still owns its copy.
 * The descriptor is read once the receiver answers, not before: while we wait, the
 * socket may be closed and its number reused by another connection.
 * @throws ConnectFailedError (reason `${label}_refused` when nobody listens there)
 */
export async function sendHandoff(path: string, socket: net.Socket, label: string): Promise<void> {
  const native = loadNative();
  const via = net.connect({ path });
  try {
    await new Promise<void>((resolve, reject) => {
      via.once('connect', resolve);
      via.once('error', reject);
    });
    const fd = socketFd(socket);
    // The receiver gets the socket as accept(2) gives it: blocking. The flag
    // is the socket's, shared with our copy, which is closed once sent
    // without another read or write (and made non-blocking again if not sent).
    setNonBlocking(fd, false);
    try {
      native.sendFd(socketFd(via), fd);
    } catch (err) {
      setNonBlocking(fd, true);
      throw err;
    }
  } catch (err) {
    throw handoffError(err, path, label);
  } finally {
    via.destroy();
  }
}

/**
 * A dialer for `handoff:PATH` in tunnel roles: each stream gets a fresh
 * connected pair; one end goes to the receiver, the jumper pumps the
 * decrypted bytes into the other.
 */
export function createHandoffDialer(path: string, label: string, pairs: PairFactory = connectedPair): Dialer {
  return async () => {
    let pair;
    try {
      pair = await pairs();
    } catch (cause) {
      throw new ConnectFailedError(`cannot make a socket pair to hand off to ${path}`, { cause, reason: `${label}_unreachable` });
    }
    const { ours, theirs } = pair;
    try {
      await sendHandoff(path, theirs, label);
    } catch (err) {
      ours.destroy();
      throw err;
    } finally {
      // The receiver holds its own reference now (or the hand-off failed).
      theirs.destroy();
    }
    return ours;
  };
}

/**
 * Receive hand-offs on `path`: calls `onFd` with each descriptor (the
 * callee owns it). Malformed hand-offs are dropped. Returns the server.
 */
export async function listenForHandoffs(path: string, onFd: (fd: number) => void, onError: (err: unknown) => void): Promise<net.Server> {
  const native = loadNative();
  const server = net.createServer({ pauseOnConnect: true }, (via) => {
    via.on('error', () => {});
    const started = Date.now();
    // The message may not have arrived yet when the connection is accepted.
    const poll = () => {
      let fd: number;
      try {
        fd = native.recvFd(socketFd(via));
      } catch (err) {
        via.destroy();
        onError(err);
        return;
      }
      if (fd >= 0) {
        via.destroy();
        onFd(fd);
      } else if (Date.now() - started > RECEIVE_TIMEOUT_MS) {
        via.destroy();
        onError(new SocketError('hand-off sender connected but sent no descriptor'));
      } else {
        setTimeout(poll, RECEIVE_POLL_MS);
      }
    };
    poll();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      // Later accept errors (EMFILE) are reported, not thrown for want of a listener.
      server.off('error', reject).on('error', onError);
      resolve();
    });
  });
  return server;
}

/** Close a descriptor we received but will not use. */
export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/**
 * Forward mode: pass the accepted socket itself, so the jumper leaves the
 * data path entirely. The receiver's descriptor is the original TCP socket.
 */
export async function runHandoffForwardConn(conn: Conn, accepted: net.Socket, path: string): Promise<void> {
  conn.adoptPlain(accepted);
  try {
    await sendHandoff(path, accepted, 'target');
  } catch (err) {
    conn.fail(err, 'local');
    return;
  }
  conn.handedOff(accepted);
}
