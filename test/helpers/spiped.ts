/**
 * The real spiped binary and jumper's spiped-compatible conns, on loopback,
 * for interop tests. Everything started here is stopped at teardown.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createDialer, type Dialer } from '../../src/addr/dial.js';
import { parseAddress } from '../../src/addr/address.js';
import { readKeyFile, type TunnelKey } from '../../src/keys/key-file.js';
import { Conn, type ConnSummary } from '../../src/proto/conn.js';
import { runSpipedClientConn, runSpipedServerConn, type SpipedConnOptions } from '../../src/proto/spiped/conn.js';
import type { PfsMode } from '../../src/proto/spiped/handshake.js';

export const SPIPED = '/usr/bin/spiped';
const KEY_FILE_BYTES = 32;
const LISTEN_POLL_MS = 20;
const LISTEN_WAIT_MS = 20_000;
/** /proc/net/tcp state of a listening socket. */
const TCP_LISTEN = '0A';

export interface KeyFile {
  path: string;
  key: TunnelKey;
}

/** 32 random bytes in a fresh 0600 file, as spiped's docs suggest. */
export async function makeKeyFile(t: ExecutionContext): Promise<KeyFile> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jumper-spiped-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'key');
  await fs.writeFile(file, randomBytes(KEY_FILE_BYTES), { mode: 0o600 });
  return { path: file, key: await readKeyFile(file) };
}

import { freePort } from './ports.js';

export { freePort };

/**
 * Wait until something listens on 127.0.0.1:port, without connecting: a
 * probe connection to spiped -d would make it dial its target.
 */
export async function waitListening(port: number): Promise<void> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const deadline = Date.now() + LISTEN_WAIT_MS;
  while (Date.now() < deadline) {
    const table = await fs.readFile('/proc/net/tcp', 'utf8');
    for (const line of table.split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[1] === local && cols[3] === TCP_LISTEN) return;
    }
    await new Promise((r) => setTimeout(r, LISTEN_POLL_MS));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${LISTEN_WAIT_MS} ms`);
}

export interface SpipedProcess {
  port: number;
  child: ChildProcess;
  stderr: () => string;
}

/** Run `spiped -F -e|-d` from a fresh port to 127.0.0.1:target; killed at teardown. */
export async function startSpiped(
  t: ExecutionContext,
  options: { mode: 'encrypt' | 'decrypt'; target: number; keyPath: string; flags?: string[] },
): Promise<SpipedProcess> {
  const port = await freePort();
  const args = [
    '-F',
    options.mode === 'encrypt' ? '-e' : '-d',
    '-s',
    `[127.0.0.1]:${port}`,
    '-t',
    `[127.0.0.1]:${options.target}`,
    '-k',
    options.keyPath,
    ...(options.flags ?? []),
  ];
  const child = spawn(SPIPED, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => {
    // SIGTERM would wait for open connections; the test is over.
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`spiped ${args.join(' ')} exited with ${code}: ${stderr}`))),
  );
  exited.catch(() => {});
  await Promise.race([waitListening(port), exited]);
  return { port, child, stderr: () => stderr };
}

export interface JumperSide {
  port: number;
  closed: ConnSummary[];
  /** Resolves once `n` connections closed. */
  closedCount(n: number): Promise<ConnSummary[]>;
}

const DIAL_OPTIONS = { connectTimeoutMs: 5000, keepAlive: true };

/** A listener that runs one spiped-protocol conn per accepted socket, as the roles will. */
async function startJumperSide(
  t: ExecutionContext,
  run: (conn: Conn, socket: net.Socket) => Promise<void>,
): Promise<JumperSide> {
  const closed: ConnSummary[] = [];
  const waiters: Array<() => void> = [];
  let nextId = 1;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn = new Conn(nextId++, socket, (summary) => {
      closed.push(summary);
      for (const w of waiters.splice(0)) w();
    });
    void run(conn, socket);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const closedCount = (n: number): Promise<ConnSummary[]> =>
    new Promise((resolve) => {
      const check = () => {
        if (closed.length >= n) resolve(closed);
        else waiters.push(check);
      };
      check();
    });
  return { port: (server.address() as net.AddressInfo).port, closed, closedCount };
}

export interface JumperSpipedOptions {
  key: TunnelKey;
  /** Port to dial: the provider (server side) or the spiped server (client side). */
  target: number;
  pfs?: PfsMode;
  handshakeTimeoutMs?: number;
  keepAlive?: boolean;
}

function connOptions(options: JumperSpipedOptions, dial: Dialer): SpipedConnOptions {
  return {
    key: options.key,
    dial,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    pfs: options.pfs ?? 'default',
    keepAlive: options.keepAlive ?? true,
  };
}

/** jumper as `spiped -d`: decrypts toward the provider at `target`. */
export function startJumperSpipedServer(t: ExecutionContext, options: JumperSpipedOptions): Promise<JumperSide> {
  const dial = createDialer(parseAddress(`127.0.0.1:${options.target}`), { ...DIAL_OPTIONS, label: 'provider' });
  return startJumperSide(t, (conn, socket) => runSpipedServerConn(conn, socket, connOptions(options, dial)));
}

/** jumper as `spiped -e`: encrypts toward the spiped server at `target`. */
export function startJumperSpipedClient(t: ExecutionContext, options: JumperSpipedOptions): Promise<JumperSide> {
  const dial = createDialer(parseAddress(`127.0.0.1:${options.target}`), { ...DIAL_OPTIONS, label: 'server' });
  return startJumperSide(t, (conn, socket) => runSpipedClientConn(conn, socket, connOptions(options, dial)));
}
