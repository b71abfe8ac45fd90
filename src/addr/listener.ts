/**
 * A listening socket with an admission limit.
 *
 * Connections over `maxConnections` are accepted but held unread, in arrival
 * order, until a slot frees: the peer just waits, as it would in the kernel
 * backlog, and nothing is refused or dropped. Each held connection costs a
 * file descriptor and nothing else (the socket is paused on accept).
 */
import { promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import { ListenError, type JumperError } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { socketFd } from '../native/handover.js';
import { formatAddress, type Address } from './address.js';
import { isAllowed } from './allow.js';

/** Where to listen: an address to bind, or an already listening descriptor. */
export type ListenTarget = Address | { kind: 'fd'; fd: number; label?: string };

export interface ListenerOptions {
  target: ListenTarget;
  maxConnections: number;
  backlog: number;
  logger?: Logger;
  /** Called for each admitted connection; call `release` exactly once when it is over. */
  onConnection(socket: net.Socket, release: () => void): void;
  /** Serve only peers in this list (--allow); others are reset at accept. */
  allow?: net.BlockList;
  /** Told about each peer refused by `allow` (the socket is already gone). */
  onRefused?(peer: string): void;
  /** Unix listener: the socket file's mode and owner (--listen-mode, --listen-owner). */
  unixMode?: number;
  unixOwner?: { uid: number; gid: number };
}

/** At most one accept-failure log line per this interval (EMFILE repeats per connection). */
const ACCEPT_ERROR_LOG_INTERVAL_MS = 1_000;

/**
 * The soft RLIMIT_NOFILE, read once (Linux /proc); undefined elsewhere.
 * libuv sheds connections it cannot accept (EMFILE) with its reserve
 * descriptor and usually never reports the error, so the listener watches
 * the descriptor numbers it is handed instead.
 */
const FD_LIMIT: number | undefined = (() => {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
})();

/** The OS descriptor of an accepted socket, when Node exposes it. */
function acceptedFd(socket: net.Socket): number | undefined {
  try {
    return socketFd(socket);
  } catch {
    return undefined;
  }
}

function describe(target: ListenTarget): string {
  return target.kind === 'fd' ? target.label ?? `fd:${target.fd}` : formatAddress(target);
}

/**
 * A socket file nobody accepts on is left over from a crash: remove it so the
 * path can be bound again. Only a refused probe means stale: EAGAIN is a live
 * listener with a full backlog, EACCES one we may not reach; those stay, and
 * binding then fails with a clear EADDRINUSE. Anything but a socket stays too.
 * @returns whether a file was removed
 */
export async function removeStaleUnixSocket(path: string): Promise<boolean> {
  const stale = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
  if (!stale) return false;
  const stat = await fs.lstat(path).catch(() => undefined);
  if (!stat?.isSocket()) return false;
  await fs.unlink(path);
  return true;
}

type UnixPermissions = Pick<ListenerOptions, 'unixMode' | 'unixOwner'>;

/** Bind a Unix socket under this umask when a mode or owner is given: no peer connects through wider permissions before they are set. */
export const RESTRICTIVE_UMASK = 0o177;

export function restrictsUnixPermissions(p: UnixPermissions): boolean {
  return p.unixMode !== undefined || p.unixOwner !== undefined;
}

/** --listen-mode / --listen-owner on a bound socket file (plain or opened in a namespace). */
export async function applyUnixPermissions(path: string, p: UnixPermissions): Promise<void> {
  if (p.unixOwner) await fs.chown(path, p.unixOwner.uid, p.unixOwner.gid);
  if (p.unixMode !== undefined) await fs.chmod(path, p.unixMode);
}

export class Listener {
  readonly #options: ListenerOptions;
  readonly #server: net.Server;
  readonly #waiting: net.Socket[] = [];
  readonly #logger: Logger;
  #active = 0;
  #closing = false;
  #acceptErrors = 0;
  #lastAcceptErrorLog = 0;

  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    // pauseOnConnect: no byte is read before the connection is admitted.
    this.#server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.#server.listening) return; // a bind failure: listen() reports it
      // Accept failures (EMFILE, ENFILE, ...) must never take the process down;
      // libuv sheds the pending connection with its reserve descriptor and
      // accepting resumes by itself once descriptors free up.
      this.#acceptFailed(err.code ?? 'EIO', `accept failed: ${err.message}`);
    });
  }

  /** Connections being served. */
  get active(): number {
    return this.#active;
  }

  /** Accept calls that failed (e.g. EMFILE) since start. */
  get acceptErrors(): number {
    return this.#acceptErrors;
  }

  /** Connections accepted and held until a slot frees. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The bound address as a string (with the real port when 0 was asked). */
  address(): string {
    const a = this.#server.address();
    if (a === null) return describe(this.#options.target);
    if (typeof a === 'string') return a;
    return formatAddress({ kind: 'tcp', host: a.address, port: a.port });
  }

  /** Bound TCP port, if any. */
  port(): number | undefined {
    const a = this.#server.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /**
   * Start listening.
   * @throws ListenError (JUMPER_ERR_LISTEN) with the errno when binding fails.
   */
  async listen(): Promise<void> {
    const target = this.#options.target;
    try {
      await this.#listenOnce(target);
      await this.#applyUnixPermissions(target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (target.kind === 'unix' && code === 'EADDRINUSE' && (await removeStaleUnixSocket(target.path))) {
        await this.#listenOnce(target).catch((e: unknown) => {
          throw this.#listenError(e);
        });
        await this.#applyUnixPermissions(target);
        return;
      }
      throw this.#listenError(err);
    }
  }

  /** --listen-mode/--listen-owner: exact mode and owner once bound (bind itself ran under a tight umask). */
  async #applyUnixPermissions(target: ListenTarget): Promise<void> {
    if (target.kind === 'unix') await applyUnixPermissions(target.path, this.#options);
  }

  #listenOnce(target: ListenTarget): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      const done = () => {
        this.#server.removeListener('error', onError);
        resolve();
      };
      const backlog = this.#options.backlog;
      if (target.kind === 'fd') this.#server.listen({ fd: target.fd, backlog }, done);
      else if (target.kind === 'unix') {
        // bind() is synchronous here: no peer can connect through wider permissions before the chmod.
        const umask = restrictsUnixPermissions(this.#options) ? process.umask(RESTRICTIVE_UMASK) : undefined;
        try {
          this.#server.listen({ path: target.path, backlog }, done);
        } finally {
          if (umask !== undefined) process.umask(umask);
        }
      }
      else this.#server.listen({ host: target.host, port: target.port, backlog }, done);
    });
  }

  #listenError(err: unknown): JumperError {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    const where = describe(this.#options.target);
    const hint =
      code === 'EADDRINUSE' ? ' (address already in use)' : code === 'EACCES' ? ' (permission denied: ports below 1024 need root)' : '';
    return new ListenError(`cannot listen on ${where}: ${code}${hint}`, { cause: err, errno: code, syscall: 'listen' });
  }

  /** Count and log (at most once per interval) a failed or shed accept. */
  #acceptFailed(code: string, message: string, fields: Record<string, unknown> = {}): void {
    this.#acceptErrors++;
    const now = Date.now();
    if (now - this.#lastAcceptErrorLog >= ACCEPT_ERROR_LOG_INTERVAL_MS) {
      this.#lastAcceptErrorLog = now;
      this.#logger.error({ code, failures: this.#acceptErrors, ...fields }, message);
    }
  }

  #accept(socket: net.Socket): void {
    // Descriptors are allocated lowest-first: this one being the last below the
    // limit means every lower one is in use, and libuv will now silently drop
    // new connections (EMFILE) until some close. Say so, once per interval.
    const fd = acceptedFd(socket);
    if (FD_LIMIT !== undefined && fd !== undefined && fd >= FD_LIMIT - 1) {
      this.#acceptFailed('EMFILE', 'accept failed: too many open files; new connections are dropped until descriptors free up', { fd, limit: FD_LIMIT });
    }
    if (this.#closing) {
      socket.destroy();
      return;
    }
    if (this.#options.allow && !isAllowed(this.#options.allow, socket)) {
      const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
      socket.on('error', () => {});
      try {
        socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
      this.#options.onRefused?.(peer);
      return;
    }
    if (this.#active >= this.#options.maxConnections) {
      socket.on('error', () => {}); // the peer may reset while it waits
      socket.once('close', () => {
        const i = this.#waiting.indexOf(socket);
        if (i >= 0) this.#waiting.splice(i, 1);
      });
      this.#waiting.push(socket);
      return;
    }
    this.#admit(socket);
  }

  #admit(socket: net.Socket): void {
    this.#active++;
    let released = false;
    this.#options.onConnection(socket, () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#admitWaiting();
    });
  }

  #admitWaiting(): void {
    while (this.#active < this.#options.maxConnections && this.#waiting.length > 0) {
      const next = this.#waiting.shift()!;
      next.removeAllListeners('close');
      next.removeAllListeners('error');
      if (next.destroyed) continue;
      this.#admit(next);
    }
  }

  /** Stop accepting; held (never admitted) connections are closed. Open streams are not touched. */
  close(): Promise<void> {
    this.#closing = true;
    for (const socket of this.#waiting.splice(0)) socket.destroy();
    // net.Server.close()'s callback waits for every open connection; draining
    // those is the caller's job, so only wait for the listening socket to go.
    if (this.#server.listening) this.#server.close();
    return Promise.resolve();
  }
}
