/**
 * The admin endpoint: /metrics parses as Prometheus text and its counters
 * equal what the test sent; /healthz, /status, and `jumper status`.
 */
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { JumperMetrics } from '../src/admin/metrics.js';
import { startAdminServer, type ProcessStatus } from '../src/admin/server.js';
import { createBalancer, createClient, createServer, type Jumper } from '../src/index.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { parsePromText } from './helpers/prom-text.js';
import { freePort } from './helpers/cli.js';
import { adminGet, JUMPER_SRC, startJumperSrc } from './helpers/run-cli.js';
import { makeKey } from './helpers/tunnel.js';

const execFileAsync = promisify(execFile);

/** Wait until `jumper` reported `n` closed connections. */
function closed(jumper: Jumper, n: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    const on = () => {
      if (++seen >= n) {
        jumper.off('close', on);
        resolve();
      }
    };
    jumper.on('close', on);
  });
}

async function setup(t: import('ava').ExecutionContext) {
  const provider = await startEchoProvider(t);
  const key = await makeKey();
  const server = createServer({ listen: '127.0.0.1:0', connect: provider.address, key });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  // Off, so the server counts exactly the streams sent (preconnect's own metrics: test/preconnect.test.ts).
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key, preconnect: 0 });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const metrics = new JumperMetrics();
  metrics.attach('db-client', client);
  metrics.attach('db-server', server);
  const status = (): ProcessStatus => ({
    pid: process.pid,
    uptimeSeconds: 0,
    links: [
      { name: 'db-client', role: 'client', state: 'running', listen: client.address(), connect: client.connectDescription, stats: client.stats() },
      { name: 'db-server', role: 'server', state: 'running', listen: server.address(), connect: server.connectDescription, stats: server.stats() },
    ],
  });
  const admin = await startAdminServer({ listen: '127.0.0.1:0', metrics, status });
  t.teardown(() => admin.close());
  return { provider, key, server, client, admin: admin.address };
}

test('/metrics parses as Prometheus text and counts exactly what was sent, failures by reason', async (t) => {
  const { server, client, admin } = await setup(t);
  const sizes = [1, 70_000, 1 << 20];
  const clientDone = closed(client, sizes.length + 1);
  const serverDone = closed(server, sizes.length + 3);
  for (const size of sizes) {
    const data = randomBytes(size);
    const r = await exchange({ port: client.port()! }, data);
    t.is(sha256(r.received), sha256(data));
  }
  // A client with the wrong key: the server logs bad_key, this client handshake_rejected.
  const stranger = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key: await makeKey() });
  await stranger.listen();
  t.teardown(() => stranger.close({ drainTimeoutMs: 0 }));
  await exchange({ port: stranger.port()! }, Buffer.from('hello'));
  // Garbage straight at the server: bad_magic.
  await exchange({ port: server.port()! }, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  // A consumer that leaves at once through the good client: counted, bytes 0.
  await exchange({ port: client.port()! }, Buffer.alloc(0));
  await Promise.all([clientDone, serverDone]);

  const res = await adminGet(admin, '/metrics');
  t.is(res.status, 200);
  t.regex(res.type ?? '', /^text\/plain; version=0\.0\.4/);
  const m = parsePromText(res.body);
  const total = sizes.reduce((a, b) => a + b, 0);
  t.is(m.types.get('jumper_connections_total'), 'counter');
  t.is(m.types.get('jumper_connect_duration_seconds'), 'histogram');
  t.is(m.get('jumper_connections_total', { link: 'db-client', role: 'client' }), sizes.length + 1);
  t.is(m.get('jumper_connections_total', { link: 'db-server', role: 'server' }), sizes.length + 3);
  t.is(m.get('jumper_bytes_total', { link: 'db-client', direction: 'up' }), total);
  t.is(m.get('jumper_bytes_total', { link: 'db-client', direction: 'down' }), total);
  t.is(m.get('jumper_bytes_total', { link: 'db-server', direction: 'up' }), total);
  t.is(m.get('jumper_bytes_total', { link: 'db-server', direction: 'down' }), total);
  t.is(m.get('jumper_handshake_failures_total', { link: 'db-server', reason: 'bad_key' }), 1);
  t.is(m.get('jumper_handshake_failures_total', { link: 'db-server', reason: 'bad_magic' }), 1);
  t.is(m.get('jumper_connection_failures_total', { link: 'db-server', reason: 'bad_key' }), 1);
  t.is(m.get('jumper_connection_failures_total', { link: 'db-client' }), undefined, 'the good client had no failure');
  // Provider dials: one per authenticated stream (the empty one included).
  t.is(m.get('jumper_connect_duration_seconds_count', { link: 'db-server' }), sizes.length + 1);
  t.is(m.get('jumper_connect_duration_seconds_count', { link: 'db-client' }), sizes.length + 1);
  t.true(m.get('jumper_connect_duration_seconds_sum', { link: 'db-server' })! > 0);
  t.is(m.get('jumper_connections_open', { link: 'db-server' }), 0);
  t.is(m.get('jumper_link_up', { link: 'db-client' }), 1);
  t.true(m.get('process_resident_memory_bytes')! > 0, 'process metrics are there too');
});

test('/metrics shows open streams while they are open', async (t) => {
  const { client, server, admin } = await setup(t);
  const net = await import('node:net');
  const socket = net.connect({ port: client.port()!, host: '127.0.0.1' });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write('ping');
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  const m = parsePromText((await adminGet(admin, '/metrics')).body);
  t.is(m.get('jumper_connections_open', { link: 'db-client' }), 1);
  t.is(m.get('jumper_connections_open', { link: 'db-server' }), 1);
  const done = closed(server, 1);
  socket.end();
  await done;
  const after = parsePromText((await adminGet(admin, '/metrics')).body);
  t.is(after.get('jumper_connections_open', { link: 'db-server' }), 0);
});

test('/healthz, /status and unknown paths', async (t) => {
  const { admin, client } = await setup(t);
  const health = await adminGet(admin, '/healthz');
  t.is(health.status, 200);
  t.is(health.body, 'ok\n');
  const status = await adminGet(admin, '/status');
  t.is(status.type, 'application/json');
  const body = JSON.parse(status.body) as ProcessStatus;
  t.deepEqual(body.links.map((l) => [l.name, l.role, l.state, l.listen]), [
    ['db-client', 'client', 'running', client.address()],
    ['db-server', 'server', 'running', body.links[1]!.listen],
  ]);
  t.is((await adminGet(admin, '/nope')).status, 404);
  const post = await fetch(`http://${admin}/metrics`, { method: 'POST' });
  t.is(post.status, 405);
});

test('jumper status --admin prints a table of links and live counters', async (t) => {
  const { admin, client } = await setup(t);
  const done = closed(client, 1);
  await exchange({ port: client.port()! }, randomBytes(2048));
  await done;
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', JUMPER_SRC, 'status', '--admin', admin]);
  const lines = stdout.trim().split('\n');
  t.regex(lines[1]!, /^LINK\s+ROLE\s+STATE\s+LISTEN\s+CONNECT\s+OPEN\s+WAIT\s+TOTAL\s+FAILED\s+UP\s+DOWN$/);
  const row = lines.find((l) => l.startsWith('db-client'))!;
  t.regex(row, /^db-client\s+client\s+running\s+127\.0\.0\.1:\d+\s+127\.0\.0\.1:\d+\s+0\s+0\s+1\s+0\s+2\.0 KiB\s+2\.0 KiB$/);
  const unreachable = await execFileAsync(process.execPath, ['--import', 'tsx', JUMPER_SRC, 'status', '--admin', '127.0.0.1:1']).catch((e: unknown) => e as { code: number; stderr: string });
  t.is((unreachable as { code: number }).code, 1);
  t.regex((unreachable as { stderr: string }).stderr, /cannot reach the admin endpoint 127\.0\.0\.1:1: ECONNREFUSED/);
});

test('an admin Unix socket file left by a crash is replaced; a live one is not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'admin.sock');
  // A process that bound the path and died without unlinking it, as after kill -9.
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  const status = (): ProcessStatus => ({ pid: process.pid, uptimeSeconds: 0, links: [] });
  const admin = await startAdminServer({ listen: path, metrics: new JumperMetrics(), status });
  t.teardown(() => admin.close());
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ socketPath: path, path: '/healthz' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
    }).on('error', reject);
  });
  t.is(body, 'ok\n');
  await t.throwsAsync(startAdminServer({ listen: path, metrics: new JumperMetrics(), status }), { code: 'JUMPER_ERR_LISTEN' } as never);
});

test('jumper_backend_up: one series per backend while a reloaded link drains beside its new instance; draining backends are left out', async (t) => {
  const provider = await startEchoProvider(t);
  const other = await startEchoProvider(t);
  // The old and the new instance of one link, both balancing over the same backend.
  // `other` first: round-robin gives it the held stream, and only the old instance has it.
  const old = createBalancer({ listen: '127.0.0.1:0', backends: [other.address, provider.address] });
  const next = createBalancer({ listen: '127.0.0.1:0', backends: [provider.address] });
  for (const b of [old, next]) {
    await b.listen();
    t.teardown(() => b.close({ drainTimeoutMs: 0 }));
  }
  const metrics = new JumperMetrics();
  metrics.attach('lb', old);
  metrics.attach('lb', next);
  const m = parsePromText(await metrics.text());
  t.is(m.get('jumper_backend_up', { link: 'lb', backend: provider.address }), 1);
  t.is(m.get('jumper_backend_up', { link: 'lb', backend: other.address }), 1);
  // A backend removed while a stream is open to it drains: not reported as down.
  const held = net.connect({ port: old.port()!, host: '127.0.0.1' });
  t.teardown(() => held.destroy());
  await new Promise<void>((resolve) => held.once('connect', () => resolve()));
  held.write('x');
  await new Promise<void>((resolve) => held.once('data', () => resolve()));
  const target = old.backends().find((b) => b.active === 1)!.address;
  t.is(target, other.address);
  old.updateBackends([{ address: provider.address, weight: 1 }]);
  t.is(old.backends().find((b) => b.address === target)?.state, 'draining');
  const after = parsePromText(await metrics.text());
  t.is(after.get('jumper_backend_up', { link: 'lb', backend: other.address }), undefined, 'a draining backend is not reported up or down');
  t.is(after.get('jumper_backend_up', { link: 'lb', backend: provider.address }), 1);
  t.is(after.get('jumper_backend_open_streams', { link: 'lb', backend: target }), 1);
});

test('a single-role command with --admin reports its backends, the user it runs as and jumper_link_up, as jumper run does', async (t) => {
  const [one, two] = [await startEchoProvider(t), await startEchoProvider(t)];
  const port = await freePort();
  const adminPort = await freePort();
  const admin = `127.0.0.1:${adminPort}`;
  const cli = startJumperSrc(t, ['balance', '--listen', `127.0.0.1:${port}`, '--backend', one.address, '--backend', two.address, '--admin', admin]);
  await cli.waitFor((l) => l.msg === 'balance jumper listening');
  const status = JSON.parse((await adminGet(admin, '/status')).body) as ProcessStatus;
  t.deepEqual(status.links[0]?.backends?.map((b) => b.backend).sort(), [one.address, two.address].sort());
  t.deepEqual(status.user, { uid: process.getuid!(), gid: process.getgid!() });
  const m = parsePromText((await adminGet(admin, '/metrics')).body);
  t.is(m.get('jumper_link_up', { link: 'balance', role: 'balance' }), 1);
});
