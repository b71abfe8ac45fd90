/**
 * A real etcd server (Debian's etcd-server) on loopback with a temporary
 * data directory, stoppable and restartable on the same ports and data, and
 * always killed at teardown.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from './cli.js';
import type { TestPki } from './certs.js';

export const ETCD_BIN = '/usr/bin/etcd';
const READY_WAIT_MS = 15_000;

export function etcdUnavailableReason(): string | undefined {
  return existsSync(ETCD_BIN) ? undefined : `${ETCD_BIN} not found (apt-get install etcd-server)`;
}

export interface TestEtcdOptions {
  /** Serve clients over TLS with this PKI's server certificate; its CA is also the one client certificates must chain to. */
  tls?: TestPki;
  /** With tls: refuse clients without a certificate from the PKI's CA (etcd --client-cert-auth). */
  clientCertAuth?: boolean;
  /** More etcd flags, e.g. ['--auth-token-ttl', '1']. */
  extraArgs?: string[];
}

export interface TestEtcd {
  /** host:port of the client endpoint. */
  endpoint: string;
  /** etcd://endpoint/PREFIX, or etcds:// when the server speaks TLS */
  url(prefix: string): string;
  /** A client for inspecting and editing keys (closed at teardown). */
  client: Etcd3;
  stop(): Promise<void>;
  /** Start again on the same ports and data directory. */
  start(): Promise<void>;
  /** The server's pid while it runs (a test may SIGSTOP it: connections then go unanswered). */
  pid(): number | undefined;
  /** Keys (as strings) under `prefix`, with their values. */
  keys(prefix: string): Promise<Record<string, string>>;
}

export async function startEtcd(t: ExecutionContext, options: TestEtcdOptions = {}): Promise<TestEtcd> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jumper-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  // Health is read over plain HTTP here, whether or not clients get TLS.
  const metricsPort = await freePort();
  const endpoint = `127.0.0.1:${clientPort}`;
  const { tls } = options;
  const scheme = tls ? 'https' : 'http';
  const tlsArgs = tls
    ? ['--cert-file', tls.server.cert, '--key-file', tls.server.key, ...(options.clientCertAuth ? ['--client-cert-auth', '--trusted-ca-file', tls.ca] : [])]
    : [];
  let child: ChildProcess | undefined;
  let output = '';

  const start = async (): Promise<void> => {
    output = '';
    const proc = spawn(
      ETCD_BIN,
      [
        '--name', 'test',
        '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', `${scheme}://${endpoint}`,
        '--advertise-client-urls', `${scheme}://${endpoint}`,
        '--listen-metrics-urls', `http://127.0.0.1:${metricsPort}`,
        ...tlsArgs,
        ...(options.extraArgs ?? []),
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + READY_WAIT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}: ${output.slice(-2000)}`);
      try {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/health`);
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`etcd did not become healthy in ${READY_WAIT_MS} ms: ${output.slice(-2000)}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };

  let client: Etcd3 | undefined;
  // Registered before start(): an etcd that never becomes healthy is killed too.
  t.teardown(async () => {
    client?.close();
    await stop();
    await fs.rm(dir, { recursive: true, force: true });
  });
  await start();
  client = new Etcd3({
    hosts: `${scheme}://${endpoint}`,
    ...(tls ? { credentials: { rootCertificate: await fs.readFile(tls.ca), privateKey: await fs.readFile(tls.server.key), certChain: await fs.readFile(tls.server.cert) } } : {}),
  });
  const inspector = client;
  return {
    endpoint,
    url: (prefix) => `${tls ? 'etcds' : 'etcd'}://${endpoint}${prefix.startsWith('/') ? '' : '/'}${prefix}`,
    client: inspector,
    stop,
    start,
    pid: () => child?.pid,
    keys: async (prefix) => inspector.getAll().prefix(prefix).strings(),
  };
}
