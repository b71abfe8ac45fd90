/**
 * Namespace jumping, end to end, in a topology the test builds and deletes:
 *
 *   consumer ns (lo only)          provider ns (service on its own 127.0.0.1)
 *        ^ listen-netns                  ^ connect-netns
 *   [client jumper in host A] --veth-- [server jumper in host B]
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createForward, type ConnSummary } from '../src/index.js';
import { cliBuilt, freePort, JUMPER, startJumper } from './helpers/cli.js';
import { createNetns, createVethPair, killAtTeardown, netnsUnsupportedReason } from './helpers/netns.js';
import { sha256, startEchoProvider } from './helpers/providers.js';
import { pollUntil } from './helpers/poll.js';

const execFileAsync = promisify(execFile);
const reason = netnsUnsupportedReason() ?? (cliBuilt ? undefined : 'dist/ is not built (run npm run build)');
const nsTest = reason ? test.skip : test;
if (reason) console.log(`skipping namespace tests: ${reason}`);

const MiB = 1024 * 1024;

/** Provider: sends SIZE random bytes, hashes what it receives, prints one JSON line per connection. */
const PROVIDER_PY = `
import hashlib, json, os, socket, sys, threading
size = int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1]))); srv.listen(16)
print(json.dumps({'ready': True}), flush=True)
while True:
    c, peer = srv.accept()
    data = os.urandom(size)
    t = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
    t.start()
    h = hashlib.sha256(); n = 0
    while True:
        b = c.recv(1 << 16)
        if not b: break
        h.update(b); n += len(b)
    t.join(); c.close()
    print(json.dumps({'peer': peer[0], 'received': h.hexdigest(), 'receivedBytes': n, 'sent': hashlib.sha256(data).hexdigest()}), flush=True)
`;

/** Consumer: connects to 127.0.0.1:PORT, sends SIZE random bytes, half-closes, hashes the reply. */
const CONSUMER_PY = `
import hashlib, json, os, socket, sys, threading
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
data = os.urandom(int(sys.argv[2]))
t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
t.start()
h = hashlib.sha256(); n = 0
while True:
    b = s.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
t.join()
print(json.dumps({'sent': hashlib.sha256(data).hexdigest(), 'received': h.hexdigest(), 'receivedBytes': n}))
`;

function scripts(t: import('ava').ExecutionContext): { provider: string; consumer: string } {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-ns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'provider.py'), PROVIDER_PY);
  writeFileSync(join(dir, 'consumer.py'), CONSUMER_PY);
  return { provider: join(dir, 'provider.py'), consumer: join(dir, 'consumer.py') };
}

nsTest('consumer ns (lo only) reaches a provider in another ns through client and server jumpers on two "hosts"', async (t) => {
  const consumer = await createNetns(t, 'consumer');
  const providerNs = await createNetns(t, 'provider');
  const hostA = await createNetns(t, 'hosta');
  const hostB = await createNetns(t, 'hostb');
  const veth = await createVethPair(t, hostA, hostB);
  const files = scripts(t);
  const keyDir = mkdtempSync(join(tmpdir(), 'jumper-key-'));
  t.teardown(() => rmSync(keyDir, { recursive: true, force: true }));
  const keyFile = join(keyDir, 'k');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });

  const size = 16 * MiB;
  const provider = providerNs.spawn('python3', [files.provider, '7000', String(size)]);
  await provider.next();

  const server = startJumper(
    t,
    ['server', '--listen', `${veth.b.address}:8025`, '--connect-netns', providerNs.name, '--connect', '127.0.0.1:7000', '--key', keyFile],
    { netns: hostB.name },
  );
  await server.waitFor((l) => l.msg === 'server jumper listening');
  const client = startJumper(
    t,
    ['client', '--listen-netns', consumer.name, '--listen', '127.0.0.1:5432', '--connect', `${veth.b.address}:8025`, '--key', keyFile],
    { netns: hostA.name },
  );
  await client.waitFor((l) => l.msg === 'client jumper listening');

  const { stdout } = await consumer.exec('python3', [files.consumer, '5432', String(size)], { timeoutMs: 60_000 });
  const seenByConsumer = JSON.parse(stdout) as { sent: string; received: string; receivedBytes: number };
  const seenByProvider = await provider.next<{ peer: string; received: string; receivedBytes: number; sent: string }>();

  t.is(seenByConsumer.receivedBytes, size);
  t.is(seenByConsumer.received, seenByProvider.sent);
  t.is(seenByProvider.receivedBytes, size);
  t.is(seenByProvider.received, seenByConsumer.sent);
  t.is(seenByProvider.peer, '127.0.0.1'); // the provider only ever sees its own loopback

  // The consumer namespace still has nothing but lo, and no routes.
  const links = (await consumer.exec('ip', ['-o', 'link', 'show'])).stdout.trim().split('\n');
  t.deepEqual(links.map((l) => l.split(':')[1]!.trim()), ['lo']);
  const routes = (await consumer.exec('ip', ['route', 'show'])).stdout.trim();
  t.is(routes, '');
  const closed = await server.waitFor((l) => l.msg === 'connection closed');
  t.is(closed.reason, 'done');
});

nsTest('jumper forward bridges a lo-only namespace to a service bound to the host loopback', async (t) => {
  const consumer = await createNetns(t, 'fwd');
  const files = scripts(t);
  const hostService = await startEchoProvider(t);
  const forward = createForward({ listen: '127.0.0.1:6379', listenNetns: consumer.name, connect: hostService.address });
  await forward.listen();
  t.teardown(() => forward.close({ drainTimeoutMs: 0 }));
  const { stdout } = await consumer.exec('python3', [files.consumer, '6379', String(2 * MiB)], { timeoutMs: 30_000 });
  const seen = JSON.parse(stdout) as { sent: string; received: string };
  t.is(seen.received, seen.sent); // echoed through the host-loopback service
  t.is(hostService.connections, 1);
  t.is(hostService.peers[0]!.split(':')[0], '127.0.0.1');
});

/** A forwarder that dials `connect` inside namespace `ns`, and the summaries of the streams it closed. */
async function forwardInto(t: ExecutionContext, ns: string, connect: string) {
  const fwd = createForward({ listen: '127.0.0.1:0', connectNetns: ns, connect });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const closed: ConnSummary[] = [];
  fwd.on('close', (s) => closed.push(s));
  // The consumer can see the echo end before the jumper records the stream closed.
  const closedCount = async (n: number): Promise<void> => {
    await pollUntil(() => closed.length >= n, 5000);
  };
  return { fwd, closed, closedCount };
}

nsTest('a namespace deleted while the jumper runs fails that connection clearly; the jumper keeps serving', async (t) => {
  const target = await createNetns(t, 'gone');
  const { fwd, closed, closedCount } = await forwardInto(t, target.name, '127.0.0.1:9');
  await execFileAsync('ip', ['netns', 'delete', target.name]);
  const attempt = () =>
    new Promise<string>((resolve) => {
      const s = net.connect({ port: fwd.port()!, host: '127.0.0.1' });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('end', () => resolve('end'));
    });
  t.is(await attempt(), 'ECONNRESET');
  t.is(await attempt(), 'ECONNRESET');
  await closedCount(2);
  t.is(closed.length, 2);
  t.is(closed[0]!.reason, 'netns_error');
  t.regex(closed[0]!.error?.message ?? '', /^no such network namespace/);
  t.is(fwd.stats().failures.netns_error, 2);
});

/**
 * A process whose namespace changes on request while its PID stays the same (`exec unshare -n` moves it into a
 * fresh one, as a reused PID would name another), and a `ping` stream through a forwarder: what came back, or the
 * error code.
 */
function movingProcess(t: ExecutionContext) {
  const holder = spawn('sh', ['-c', 'read line; exec unshare -n sleep 60'], { stdio: ['pipe', 'ignore', 'inherit'] });
  killAtTeardown(t, holder);
  const nsFile = `/proc/${holder.pid}/ns/net`;
  const first = readlinkSync(nsFile);
  return {
    pid: holder.pid!,
    async move(): Promise<void> {
      holder.stdin!.end('go\n');
      await pollUntil(() => readlinkSync(nsFile) !== first, 2000);
      t.not(readlinkSync(nsFile), first, 'the process moved to another namespace');
    },
  };
}

function ping(port: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let echoed = '';
    s.on('data', (c: Buffer) => (echoed += c.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('end', () => resolve(echoed));
    s.end('ping');
  });
}

nsTest('pid:N keeps to the namespace it first found: once process N is in another one (a reused PID, here an exec into unshare -n), streams fail with netns_error instead of going there', async (t) => {
  const provider = await startEchoProvider(t);
  const holder = movingProcess(t);
  const { fwd, closed, closedCount } = await forwardInto(t, `pid:${holder.pid}`, provider.address);
  t.is(await ping(fwd.port()!), 'ping', 'the first stream reaches the provider in the namespace pid:N had');
  await closedCount(1);
  await holder.move();
  t.is(await ping(fwd.port()!), 'ECONNRESET');
  await closedCount(2);
  t.deepEqual(closed.map((c) => c.reason), ['done', 'netns_error']);
  t.regex(closed[1]!.error?.message ?? '', /is now in another network namespace/);
});

nsTest('pid:N is pinned when the jumper is set up: a process that moved before the first stream fails that stream with netns_error', async (t) => {
  const provider = await startEchoProvider(t);
  const holder = movingProcess(t);
  const { fwd, closed, closedCount } = await forwardInto(t, `pid:${holder.pid}`, provider.address);
  // Before any stream: the PID now names another namespace (as a reused one would).
  await holder.move();
  t.is(await ping(fwd.port()!), 'ECONNRESET');
  await closedCount(1);
  t.deepEqual(closed.map((c) => c.reason), ['netns_error']);
  t.regex(closed[0]!.error?.message ?? '', /is now in another network namespace/);
  t.is(provider.connections, 0);
});

nsTest('in a namespace, a missing Unix path is target_refused, as without one (so --start waits for a provider still binding)', async (t) => {
  const target = await createNetns(t, 'reasons');
  const { fwd, closed, closedCount } = await forwardInto(t, target.name, '/nonexistent-jumper-test/provider.sock');
  await new Promise<void>((resolve) => {
    const s = net.connect({ port: fwd.port()!, host: '127.0.0.1' });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  await closedCount(1);
  t.deepEqual(closed.map((c) => c.reason), ['target_refused']);
});

nsTest('a Unix listener opened in a namespace gets --listen-mode, and close() removes its file', async (t) => {
  const ns = await createNetns(t, 'unixmode');
  const dir = mkdtempSync(join(tmpdir(), 'jumper-nsunix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'in.sock');
  const fwd = createForward({ listen: path, listenNetns: ns.name, listenMode: 0o600, connect: '127.0.0.1:9' });
  await fwd.listen();
  let closed = false;
  t.teardown(() => (closed ? undefined : fwd.close({ drainTimeoutMs: 0 })));
  t.is(statSync(path).mode & 0o777, 0o600);
  await fwd.close({ drainTimeoutMs: 0 });
  closed = true;
  t.false(existsSync(path));
});

nsTest('a Unix listener opened in a namespace replaces a stale socket file left by a crash', async (t) => {
  const ns = await createNetns(t, 'unixstale');
  const dir = mkdtempSync(join(tmpdir(), 'jumper-nsunix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'in.sock');
  // A process that bound the path and died without unlinking it.
  await execFileAsync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  t.true(statSync(path).isSocket());
  const provider = await startEchoProvider(t);
  const fwd = createForward({ listen: path, listenNetns: ns.name, connect: provider.address });
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  await fwd.listen();
  const payload = randomBytes(4096);
  const echoed = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ path }, () => s.end(payload));
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
  t.is(sha256(echoed), sha256(payload));
});

nsTest('binding a restricted Unix listener in a namespace leaves the process umask alone meanwhile', async (t) => {
  const ns = await createNetns(t, 'umask');
  const dir = mkdtempSync(join(tmpdir(), 'jumper-nsunix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A thread that keeps reading the umask all threads share (the one a child spawned meanwhile would inherit)
  // while the main thread binds: the JS thread's own turns could miss a short window.
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const watcher = new Worker(
    `const { readFileSync } = require('node:fs'); const { parentPort, workerData } = require('node:worker_threads');
     const seen = new Set(); let reads = 0;
     const read = () => { seen.add(/^Umask:\\s*(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]); reads++; };
     read(); parentPort.postMessage('ready');
     while (Atomics.load(workerData, 0) === 0) read();
     parentPort.postMessage({ seen: [...seen], reads });`,
    { eval: true, workerData: stop },
  );
  t.teardown(() => watcher.terminate());
  const nextMessage = () => new Promise<unknown>((resolve) => watcher.once('message', resolve));
  t.is(await nextMessage(), 'ready');
  const result = nextMessage() as Promise<{ seen: string[]; reads: number }>;
  const before = /^Umask:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  for (let round = 0; round < 10; round++) {
    const path = join(dir, `in-${round}.sock`);
    const fwd = createForward({ listen: path, listenNetns: ns.name, listenMode: 0o600, connect: '127.0.0.1:9' });
    await fwd.listen();
    t.is(statSync(path).mode & 0o777, 0o600);
    await fwd.close({ drainTimeoutMs: 0 });
  }
  Atomics.store(stop, 0, 1);
  const { seen, reads } = await result;
  t.deepEqual(seen, [before]);
  // It was reading throughout (ten binds take milliseconds; a read takes microseconds).
  t.true(reads > 10, `only ${reads} reads`);
});

nsTest('without root, a namespace option fails with one clear line about CAP_SYS_ADMIN', async (t) => {
  const ns = await createNetns(t, 'eperm');
  const port = await freePort();
  const result = await execFileAsync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, JUMPER, 'forward', '--listen-netns', ns.name, '--listen', `127.0.0.1:${port}`, '--connect', '127.0.0.1:1'],
  ).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
  t.is(result.code, 1);
  const lines = result.stderr.trim().split('\n');
  t.is(lines.length, 1);
  t.regex(lines[0]!, /CAP_SYS_ADMIN/);
  t.regex(lines[0]!, /JUMPER_ERR_PERMISSION/);
});
