/**
 * The receiving side of hand-off, inetd style: each descriptor that arrives
 * on the Unix socket becomes stdin and stdout of a fresh `/bin/sh -c COMMAND`.
 * It can run in a namespace with no network at all; the socket file is
 * reached through a shared directory.
 */
import { spawn } from 'node:child_process';
import type net from 'node:net';
import { removeStaleUnixSocket } from '../addr/listener.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { closeFd, listenForHandoffs } from './handoff.js';
import { logCommandOutput } from './command-output.js';

export interface AcceptorOptions {
  /** Unix socket path to receive hand-offs on. */
  from: string;
  /** Shell command run per received connection. */
  exec: string;
  logger?: Logger;
}

export interface Acceptor {
  /** Connections received so far. */
  readonly received: number;
  close(): Promise<void>;
}

/** Start receiving hand-offs. @throws when the socket cannot be bound. */
export async function startAcceptor(options: AcceptorOptions): Promise<Acceptor> {
  const logger = options.logger ?? silentLogger;
  let received = 0;
  // A socket file left by a crashed receiver is replaced; a live receiver's, or
  // a file that is not a socket, is not: binding then fails with EADDRINUSE.
  await removeStaleUnixSocket(options.from);
  const server: net.Server = await listenForHandoffs(
    options.from,
    (fd) => {
      const connection = ++received;
      try {
        const child = spawn('/bin/sh', ['-c', options.exec], { stdio: [fd, fd, 'pipe'] });
        // First: a failed fork or pipe (EAGAIN, EMFILE) comes as a later 'error' event, and with no stderr pipe.
        child.once('error', (err) => logger.error({ err: err.message, connection }, 'command failed to start'));
        if (child.stderr) logCommandOutput(child.stderr, logger, { provider: options.exec, stream: 'stderr' });
        child.once('exit', (code, signal) => logger.info({ code, signal, connection }, 'connection handled'));
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'cannot run the command');
      } finally {
        closeFd(fd); // the child has its own copy
      }
    },
    // A malformed or silent hand-off, or an accept error (EMFILE): that one connection is lost.
    (err) => logger.warn({ err: (err as Error).message }, 'hand-off dropped'),
  );
  return {
    get received() {
      return received;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
