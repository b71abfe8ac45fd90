/**
 * The admin HTTP endpoint (node:http): /metrics (Prometheus text), /healthz,
 * /status (JSON). Read-only: it changes nothing, so it needs no auth, but it
 * reveals topology: bind it to loopback or a Unix socket.
 */
import http from 'node:http';
import { chmod, rm } from 'node:fs/promises';
import { formatAddress, parseAddress } from '../addr/address.js';
import { removeStaleUnixSocket } from '../addr/listener.js';
import { ListenError } from '../errors.js';
import type { JumperStats } from '../roles/jumper.js';
import type { JumperMetrics } from './metrics.js';

/** One link as /status shows it. */
export interface LinkStatus {
  name: string;
  role: string;
  /** 'running', 'draining' (removed or replaced, streams finishing) or 'failed'. */
  state: 'running' | 'draining' | 'failed';
  listen: string;
  connect?: string;
  error?: string;
  stats: JumperStats;
  backends?: { backend: string; healthy: boolean; draining?: boolean; active: number }[];
}

export interface ProcessStatus {
  pid: number;
  uptimeSeconds: number;
  /** Config file and when it was last (re)loaded, for `jumper run`. */
  config?: { file: string; loadedAt: string; reloads: number; lastReloadError?: string };
  user?: { uid: number; gid: number };
  links: LinkStatus[];
}

export interface AdminServerOptions {
  /** host:port or /path.sock */
  listen: string;
  metrics: JumperMetrics;
  status(): ProcessStatus;
}

export interface AdminServer {
  /** The bound address (real port when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

/**
 * Start the admin endpoint.
 * @throws ListenError (JUMPER_ERR_LISTEN) when the address cannot be bound; BadAddressError for a bad address.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const target = parseAddress(options.listen);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      options.metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': options.metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      // Healthy when every configured link listens; a failed link is an operator problem.
      const failed = options.status().links.filter((l) => l.state === 'failed').map((l) => l.name);
      res.writeHead(failed.length ? 503 : 200, { 'content-type': 'text/plain' }).end(failed.length ? `failed links: ${failed.join(', ')}\n` : 'ok\n');
      return;
    }
    if (path === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(options.status(), null, 2)}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /status\n');
  });
  server.keepAliveTimeout = 5_000;
  // A socket file left by a crash (kill -9) would block start-up: replace it, as for link listeners.
  if (target.kind === 'unix') await removeStaleUnixSocket(target.path);
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void =>
      reject(new ListenError(`cannot listen for admin on ${options.listen}: ${err.code}`, { cause: err, errno: err.code ?? 'EIO', syscall: 'listen' }));
    server.once('error', failed);
    const listening = (): void => {
      // A later accept error (EMFILE) drops that one request; it must not throw for want of a listener.
      server.off('error', failed).on('error', () => {});
      resolve();
    };
    if (target.kind === 'unix') server.listen(target.path, listening);
    else server.listen(target.port, target.host, listening);
  });
  if (target.kind === 'unix') await chmod(target.path, 0o660);
  const a = server.address();
  const address = typeof a === 'string' ? a : a ? formatAddress({ kind: 'tcp', host: a.address, port: a.port }) : options.listen;
  return {
    address,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // After --user the directory may not be ours (EACCES): the socket stays,
      // and the next start replaces it. Never a reason to cut the drain short.
      if (target.kind === 'unix') await rm(target.path, { force: true }).catch(() => undefined);
    },
  };
}
