/**
 * withTunnel: a real server jumper and client jumper on loopback in front of
 * a provider, closed at teardown.
 */
import type { ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { createClient, createServer, deriveKey, type ClientJumper, type ConnSummary, type ServerJumper, type TunnelKey } from '../../src/index.js';

export async function makeKey(): Promise<TunnelKey> {
  return deriveKey(randomBytes(32));
}

export interface Tunnel {
  client: ClientJumper;
  server: ServerJumper;
  clientPort: number;
  serverPort: number;
  key: TunnelKey;
  clientClosed: ConnSummary[];
  serverClosed: ConnSummary[];
  /** Resolves once `n` connections closed on the given side. */
  closedOn(side: 'client' | 'server', n: number): Promise<ConnSummary[]>;
}

export interface TunnelOptions {
  provider: string;
  key?: TunnelKey;
  clientKey?: TunnelKey;
  serverKeys?: TunnelKey[];
  handshakeTimeoutMs?: number;
  maxConnections?: number;
  /** Client: wires kept handshaken ahead of demand, and their idle limit. */
  preconnect?: number | 'auto';
  preconnectIdleMs?: number;
  /** Put something between client and server: the client connects here instead. */
  clientConnect?: (serverPort: number) => string | Promise<string>;
}

/** How long closedOn waits for the streams it asks for before failing the test with a message. */
const CLOSED_WAIT_MS = 30_000;

function waitClosed(list: ConnSummary[], emitter: ClientJumper | ServerJumper, n: number): Promise<ConnSummary[]> {
  if (list.length >= n) return Promise.resolve(list);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off('close', on);
      reject(new Error(`only ${list.length} of ${n} streams closed in ${CLOSED_WAIT_MS} ms`));
    }, CLOSED_WAIT_MS);
    const on = () => {
      if (list.length >= n) {
        clearTimeout(timer);
        emitter.off('close', on);
        resolve(list);
      }
    };
    emitter.on('close', on);
  });
}

export async function withTunnel(t: ExecutionContext, options: TunnelOptions): Promise<Tunnel> {
  const key = options.key ?? (await makeKey());
  const server = createServer({
    listen: '127.0.0.1:0',
    connect: options.provider,
    key: options.serverKeys ?? key,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    maxConnections: options.maxConnections ?? 1000,
  });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const serverPort = server.port()!;
  const connect = options.clientConnect ? await options.clientConnect(serverPort) : `127.0.0.1:${serverPort}`;
  const client = createClient({
    listen: '127.0.0.1:0',
    connect,
    key: options.clientKey ?? key,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    maxConnections: options.maxConnections ?? 1000,
    ...(options.preconnect !== undefined ? { preconnect: options.preconnect } : {}),
    ...(options.preconnectIdleMs !== undefined ? { preconnectIdleMs: options.preconnectIdleMs } : {}),
  });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const clientClosed: ConnSummary[] = [];
  const serverClosed: ConnSummary[] = [];
  client.on('close', (s) => clientClosed.push(s));
  server.on('close', (s) => serverClosed.push(s));
  return {
    client,
    server,
    clientPort: client.port()!,
    serverPort,
    key,
    clientClosed,
    serverClosed,
    closedOn: (side, n) => (side === 'client' ? waitClosed(clientClosed, client, n) : waitClosed(serverClosed, server, n)),
  };
}
