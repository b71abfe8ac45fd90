#!/usr/bin/env node
/**
 * `npm run demo:balance`: the etcd-fed balancer on loopback. Starts a
 * throw-away etcd (Debian etcd-server) in a temporary directory, three
 * server jumpers that register themselves, a balancer that discovers them
 * and a client in front; sends streams, stops one server the graceful way
 * (deregister, drain) and shows the rest keep serving. Exits 0.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readKeyFile, writeNewKeyFile } from '../keys/key-file.js';
import { createBalancer } from '../roles/balancer.js';
import { createClient } from '../roles/client.js';
import { createServer, type ServerJumper } from '../roles/server.js';
import { die } from './fail.js';

const ETCD = '/usr/bin/etcd';
const STREAMS = 60;
const keyPath = fileURLToPath(new URL('../../keys/demo.key', import.meta.url));
const say = (text: string) => process.stdout.write(`${text}\n`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function startEtcd(dir: string): Promise<{ endpoint: string; stop(): void }> {
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `127.0.0.1:${client}`;
  const child = spawn(
    ETCD,
    ['--name', 'demo', '--data-dir', path.join(dir, 'etcd'), '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `demo=http://127.0.0.1:${peer}`, '--log-level', 'error'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    try {
      const body = (await (await fetch(`http://${endpoint}/health`)).json()) as { health?: string };
      if (body.health === 'true') return { endpoint, stop: () => child.kill('SIGKILL') };
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('etcd did not start');
}

/** One stream: send a payload, expect it echoed. */
function echo(port: number): Promise<boolean> {
  const body = randomBytes(4096);
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.end(body));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(createHash('sha256').update(Buffer.concat(chunks)).digest('hex') === createHash('sha256').update(body).digest('hex')));
    socket.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  if (!existsSync(ETCD)) {
    say(`This demo needs etcd (${ETCD}): run it as root to have it installed (apt-get install etcd-server), or install it yourself.`);
    process.exit(1);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jumper-demo-'));
  const etcd = await startEtcd(dir);
  const prefix = `etcd://${etcd.endpoint}/demo/echo`;
  say(`1. etcd       ${etcd.endpoint} (temporary, data in ${dir})`);
  mkdirSync(path.dirname(keyPath), { recursive: true });
  if (!existsSync(keyPath)) await writeNewKeyFile(keyPath);
  const key = await readKeyFile(keyPath);

  const hits = [0, 0, 0];
  const providers = hits.map((_, i) => net.createServer({ allowHalfOpen: true }, (s) => {
    hits[i]!++;
    s.pipe(s);
  }));
  const servers: ServerJumper[] = [];
  for (const [i, provider] of providers.entries()) {
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
    const port = await freePort();
    const server = createServer({
      listen: `127.0.0.1:${port}`,
      connect: `127.0.0.1:${(provider.address() as net.AddressInfo).port}`,
      key,
      register: { url: prefix, advertise: `127.0.0.1:${port}`, ttlSeconds: 5, deregisterDelayMs: 300 },
    });
    await server.listen();
    servers.push(server);
    say(`2. server ${i + 1}   127.0.0.1:${port} registered under ${prefix}`);
  }
  const balancer = createBalancer({ listen: '127.0.0.1:0', discover: prefix });
  await balancer.listen();
  for (let i = 0; i < 100 && balancer.backends().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  say(`3. balancer   ${balancer.address()} discovered ${balancer.backends().length} backends (no key: streams stay encrypted end to end)`);
  const client = createClient({ listen: '127.0.0.1:0', connect: balancer.address(), key });
  await client.listen();
  say(`4. client     ${client.address()} -> balancer`);

  let ok = 0;
  for (let i = 0; i < STREAMS; i++) if (await echo(client.port()!)) ok++;
  say(`5. streams    ${ok}/${STREAMS} echoed intact; per server: ${hits.join(' / ')} (round-robin)`);

  await servers[0]!.close({ drainTimeoutMs: 2000 });
  for (let i = 0; i < 100 && balancer.backends().length > 2; i++) await new Promise((r) => setTimeout(r, 20));
  const before = [...hits];
  let ok2 = 0;
  for (let i = 0; i < STREAMS; i++) if (await echo(client.port()!)) ok2++;
  say(`6. migration  server 1 deregistered and drained; ${ok2}/${STREAMS} new streams intact, per server: ${hits.map((h, i) => h - before[i]!).join(' / ')}`);

  await client.close({ drainTimeoutMs: 1000 });
  await balancer.close({ drainTimeoutMs: 1000 });
  for (const s of servers.slice(1)) await s.close({ drainTimeoutMs: 1000 });
  for (const p of providers) p.close();
  etcd.stop();
  rmSync(dir, { recursive: true, force: true });
  say('7. done       everything stopped; see docs/discovery.md for the CLI version.');
  if (ok !== STREAMS || ok2 !== STREAMS) process.exit(1);
}

main().catch((err: unknown) => die('jumper demo:balance', err));
