/**
 * Balancing with a real etcd (Debian etcd-server on loopback): server
 * jumpers register themselves, a balancer discovers them, a client jumper
 * sits in front. Every jumper is the real CLI in its own process, so
 * SIGKILL and SIGTERM are the real thing.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { stringify } from 'yaml';
import { Supervisor } from '../src/config/run.js';
import { captureLogger } from './helpers/capture-logger.js';
import { cliBuilt, freePort, startJumper, type RunningCli } from './helpers/cli.js';
import { etcdUnavailableReason, startEtcd, type TestEtcd } from './helpers/etcd.js';
import { exchange, randomBytes, sha256, startEchoProvider, type Provider } from './helpers/providers.js';
import { makeKeyFile, waitListening } from './helpers/spiped.js';
import { pollUntil } from './helpers/poll.js';

const skipReason = etcdUnavailableReason() ?? (cliBuilt ? undefined : 'dist/ is not built (npm run build)');
const maybe = skipReason ? test.skip : test.serial;
if (skipReason) console.log(`# discovery tests skipped: ${skipReason}`);

const PREFIX = '/jumper/echo';

interface Server {
  cli: RunningCli;
  provider: Provider;
  address: string;
}

async function startServer(t: ExecutionContext, etcd: TestEtcd, keyPath: string, extra: string[] = []): Promise<Server> {
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const cli = startJumper(t, [
    'server', '--listen', address, '--connect', provider.address, '--key', keyPath,
    // 5 s: a keepalive (every third of the TTL) delayed on a loaded machine must not drop the key.
    '--register', etcd.url(PREFIX), '--advertise', address, '--lease-ttl', '5s', '--deregister-delay', '500ms',
    ...extra,
  ]);
  await cli.waitFor((l) => l.msg === 'registered in etcd');
  return { cli, provider, address };
}

async function startChain(t: ExecutionContext, etcd: TestEtcd, keyPath: string, expectBackends: number) {
  const balancerPort = await freePort();
  const balancer = startJumper(t, ['balance', '--listen', `127.0.0.1:${balancerPort}`, '--discover', etcd.url(PREFIX), '--log-level', 'debug']);
  await balancer.waitFor((l) => l.msg === 'balance jumper listening');
  await waitBackends(balancer, expectBackends);
  const clientPort = await freePort();
  // These tests count streams per server exactly: no preconnected wire (auto) may take a turn at the balancer.
  const client = startJumper(t, ['client', '--listen', `127.0.0.1:${clientPort}`, '--connect', `127.0.0.1:${balancerPort}`, '--key', keyPath, '--preconnect', '0']);
  await client.waitFor((l) => l.msg === 'client jumper listening');
  return { balancer, client, clientPort };
}

/** Backends the balancer currently has in rotation, from its log. */
function inRotation(balancer: RunningCli): Set<string> {
  const set = new Set<string>();
  for (const l of balancer.logs) {
    if (l.msg === 'backend added' || l.msg === 'backend added back') set.add(l.backend as string);
    if (typeof l.msg === 'string' && l.msg.startsWith('backend removed')) set.delete(l.backend as string);
  }
  return set;
}

async function waitBackends(balancer: RunningCli, n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (inRotation(balancer).size !== n) {
    if (Date.now() > deadline) throw new Error(`balancer has ${[...inRotation(balancer)].join(',')} instead of ${n} backends`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One stream with a fresh payload; true when the echo hash-equals it and ended cleanly. */
async function oneStream(port: number, bytes = 512): Promise<boolean> {
  const payload = randomBytes(bytes);
  try {
    const { received, ending } = await exchange({ port }, payload);
    return ending === 'end' && sha256(received) === sha256(payload);
  } catch {
    return false;
  }
}

async function streams(port: number, n: number): Promise<number> {
  let failed = 0;
  for (let i = 0; i < n; i++) if (!(await oneStream(port))) failed++;
  return failed;
}

/** A stream held open: send a first part now, the rest later; the echo must be whole. */
async function openLongStream(port: number) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<string>((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  const first = randomBytes(64 * 1024);
  socket.write(first);
  while (Buffer.concat(chunks).length < first.length) await new Promise((r) => setTimeout(r, 10));
  return {
    async finish(): Promise<boolean> {
      const second = randomBytes(256 * 1024);
      socket.end(second);
      const how = await ended;
      socket.destroy();
      return how === 'end' && sha256(Buffer.concat(chunks)) === sha256(Buffer.concat([first, second]));
    },
  };
}

async function waitGone(etcd: TestEtcd, key: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (key in (await etcd.keys(PREFIX))) {
    if (Date.now() > deadline) throw new Error(`${key} still in etcd after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

maybe('three registered servers behind a discovering balancer share 300 streams 100/100/100, every stream hash-equal', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const servers = [];
  for (let i = 0; i < 3; i++) servers.push(await startServer(t, etcd, key.path));
  // The registration records, as documented in docs/discovery.md.
  const records = await etcd.keys(PREFIX);
  t.deepEqual(Object.keys(records).sort(), servers.map((s) => `${PREFIX}/${s.address}`).sort());
  for (const s of servers) {
    t.deepEqual(JSON.parse(records[`${PREFIX}/${s.address}`]!), { address: s.address, weight: 1, version: 1, role: 'server' });
  }
  const { clientPort, balancer } = await startChain(t, etcd, key.path, 3);
  t.is(await streams(clientPort, 300), 0);
  const counts = servers.map((s) => s.provider.connections);
  for (const n of counts) t.true(n >= 99 && n <= 101, `uneven spread ${counts.join('/')}`);
  t.is(counts.reduce((a, b) => a + b, 0), 300);
  // Once the balancer has recorded every stream's end: none failed, nothing logged as an error.
  await balancer.waitFor(() => balancer.logs.filter((l) => l.msg === 'connection closed' || l.msg === 'connection failed').length >= 300, 10_000);
  t.is(balancer.logs.filter((l) => l.msg === 'connection failed').length, 0);
  t.false(balancer.stderr().includes('"level":50'));
});

maybe('jumper forward registers like a server; when start-up fails after registering (admin address in use) its key goes at once and it exits 1', async (t) => {
  const etcd = await startEtcd(t);
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const args = ['forward', '--listen', address, '--connect', provider.address, '--register', etcd.url(PREFIX), '--advertise', address, '--lease-ttl', '30s', '--deregister-delay', '0'];
  const ok = startJumper(t, args);
  await ok.waitFor((l) => l.msg === 'forward jumper listening');
  t.is((await etcd.keys(PREFIX))[`${PREFIX}/${address}`] !== undefined, true);
  ok.child.kill('SIGTERM');
  t.is((await ok.exited).code, 0);
  await waitGone(etcd, `${PREFIX}/${address}`, 2_000);

  const busy = net.createServer().listen(0, '127.0.0.1');
  t.teardown(() => busy.close());
  await new Promise((r) => busy.once('listening', r));
  const failed = startJumper(t, [...args, '--admin', `127.0.0.1:${(busy.address() as net.AddressInfo).port}`]);
  // It registered before the admin endpoint failed: only the clean-up can have removed the key.
  await failed.waitFor((l) => l.msg === 'registered in etcd', 10_000);
  const exit = await Promise.race([failed.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still running 10 s after start')), 10_000).unref())]);
  t.is(exit.code, 1, failed.stderr());
  t.regex(failed.stderr(), /admin.*EADDRINUSE/);
  // Without the clean-up the key stayed for the 30 s lease.
  t.deepEqual(Object.keys(await etcd.keys(PREFIX)), []);
});

maybe('kill -9 of a server: new streams keep succeeding, and its key is gone from etcd after the lease TTL', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const servers = [];
  for (let i = 0; i < 3; i++) servers.push(await startServer(t, etcd, key.path));
  const { clientPort, balancer } = await startChain(t, etcd, key.path, 3);
  t.is(await streams(clientPort, 30), 0);
  const victim = servers[0]!;
  victim.cli.child.kill('SIGKILL');
  await victim.cli.exited;
  // Refused connects fail over before any byte flows: no new stream fails.
  t.is(await streams(clientPort, 60), 0);
  // The lease (5 s TTL) expires; etcd deletes the key; the balancer drops it.
  await waitGone(etcd, `${PREFIX}/${victim.address}`, 15_000);
  await waitBackends(balancer, 2);
  const before = servers.map((s) => s.provider.connections);
  t.is(await streams(clientPort, 30), 0);
  const after = servers.map((s) => s.provider.connections);
  t.deepEqual([after[0]! - before[0]!, after[1]! - before[1]!, after[2]! - before[2]!], [0, 15, 15]);
});

maybe('rolling migration: v2 registers, v1 gets SIGTERM under steady load: zero failed connections, v1 open streams finish intact', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const v1 = [await startServer(t, etcd, key.path), await startServer(t, etcd, key.path)];
  const { clientPort, balancer } = await startChain(t, etcd, key.path, 2);
  // Round-robin: one long stream on each v1 server.
  const long = [await openLongStream(clientPort), await openLongStream(clientPort)];
  t.deepEqual(
    v1.map((s) => s.provider.connections),
    [1, 1],
  );
  let failed = 0;
  let done = 0;
  let running = true;
  const load = (async () => {
    while (running) {
      if (!(await oneStream(clientPort, 256))) failed++;
      done++;
    }
  })();
  const v2 = [await startServer(t, etcd, key.path), await startServer(t, etcd, key.path)];
  await waitBackends(balancer, 4);
  for (const s of v1) s.cli.child.kill('SIGTERM');
  await Promise.all(v1.map((s) => s.cli.waitFor((l) => l.msg === 'deregistered from etcd')));
  await waitBackends(balancer, 2);
  // A stream dialled just before the removal may still be reaching v1: let it finish.
  const settled = done + 2;
  while (done < settled) await new Promise((r) => setTimeout(r, 20));
  const v1After = v1.map((s) => s.provider.connections);
  // More load on v2 only, while v1 still drains its long streams.
  const until = done + 100;
  while (done < until) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(
    v1.map((s) => s.provider.connections),
    v1After,
  );
  t.true(await long[0]!.finish());
  t.true(await long[1]!.finish());
  running = false;
  await load;
  t.is(failed, 0, `${failed} of ${done} connections failed during the migration`);
  for (const s of v1) t.deepEqual(await s.cli.exited, { code: 0, signal: null });
  t.deepEqual(Object.keys(await etcd.keys(PREFIX)).sort(), v2.map((s) => `${PREFIX}/${s.address}`).sort());
  t.true(v2.every((s) => s.provider.connections > 0));
});

maybe('etcd down: the balancer serves the last known backends; etcd back: membership changes are picked up again', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const servers = [await startServer(t, etcd, key.path, ['--lease-ttl', '10s']), await startServer(t, etcd, key.path, ['--lease-ttl', '10s'])];
  const { clientPort, balancer } = await startChain(t, etcd, key.path, 2);
  await etcd.stop();
  t.is(await streams(clientPort, 20), 0);
  await balancer.waitFor((l) => l.msg === 'etcd unreachable: serving the last known backends, reconnecting');
  t.is(await streams(clientPort, 20), 0);
  t.deepEqual(
    servers.map((s) => s.provider.connections),
    [20, 20],
  );
  await etcd.start();
  // A new registration after etcd returned reaches the balancer.
  const late = await startServer(t, etcd, key.path);
  await waitBackends(balancer, 3, 15_000);
  t.is(await streams(clientPort, 30), 0);
  t.is(late.provider.connections, 10);
});

maybe('a backend written into etcd by hand is put in rotation by the watch; a bad record is ignored with a warning', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const first = await startServer(t, etcd, key.path);
  const { balancer } = await startChain(t, etcd, key.path, 1);
  const second = await startServer(t, etcd, key.path, ['--lease-ttl', '10s']);
  void second;
  await etcd.client.put(`${PREFIX}/broken`).value('{"address": 7}');
  await balancer.waitFor((l) => l.msg === 'ignoring an unusable registration' && l.key === `${PREFIX}/broken`, 10_000);
  const manual = await startEchoProvider(t);
  const written = Date.now();
  await etcd.client.put(`${PREFIX}/manual`).value(JSON.stringify({ address: manual.address, weight: 2, version: 1 }));
  // Bounded generously for a loaded machine; the figure is logged.
  await balancer.waitFor((l) => l.msg === 'backend added' && l.backend === manual.address, 10_000);
  t.log(`in rotation ${Date.now() - written} ms after the write`);
  t.deepEqual([...inRotation(balancer)].sort(), [first.address, second.address, manual.address].sort());
});

/**
 * A discovery in a child process reads the prefix, then etcd gets `signal`
 * from onUpdate (before the watch that follows the read exists), then the
 * child closes the discovery. Its output and, unless it is killed
 * `killAfterMs` after printing 'closed', its exit code.
 */
async function closeAfterEtcd(etcd: TestEtcd, signal: NodeJS.Signals, killAfterMs: number): Promise<{ out: string; code: number | null }> {
  const script = `
    import { EtcdDiscovery } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
    let signalled = false;
    const d = new EtcdDiscovery({ url: ${JSON.stringify(etcd.url(PREFIX))}, onUpdate: (b) => {
      if (signalled) return;
      signalled = true;
      process.kill(${etcd.pid()}, ${JSON.stringify(signal)});
      console.log('read ' + b.length);
    } });
    await d.start();
    await new Promise((r) => setTimeout(r, 300));
    await d.close();
    console.log('closed');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  // Counted from 'closed', so a slow start-up on a loaded machine does not eat into it; 60 s cap in all.
  let timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (/^closed$/m.test(out)) {
      clearTimeout(timer);
      timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    }
  });
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  // 'close', not 'exit': the output read below may still be in the pipes when the process has exited.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const code = await exited;
  clearTimeout(timer);
  return { out: out.trim(), code };
}

maybe('etcd gone between the read and the watch: start() resolves, close() ends the watch retries and the process exits', async (t) => {
  const etcd = await startEtcd(t);
  await etcd.client.put(`${PREFIX}/a`).value(JSON.stringify({ address: '127.0.0.1:1', weight: 1, version: 1 }));
  const { out, code } = await closeAfterEtcd(etcd, 'SIGKILL', 5_000);
  t.is(out, 'read 1\nclosed');
  t.is(code, 0, 'the process stayed alive after close() and was killed');
});

maybe('etcd frozen (SIGSTOP) between the read and the watch: start() resolves and close() returns', async (t) => {
  const etcd = await startEtcd(t);
  await etcd.client.put(`${PREFIX}/a`).value(JSON.stringify({ address: '127.0.0.1:1', weight: 1, version: 1 }));
  // The open gRPC connection to a frozen etcd may keep the child alive: it is killed once close() has had time.
  const { out } = await closeAfterEtcd(etcd, 'SIGSTOP', 1_000);
  t.is(out, 'read 1\nclosed');
});

maybe('an etcd that accepts connections but never answers (SIGSTOP) does not hold up start-up: a registering server serves (a SIGHUP while it starts is kept), a discovering balancer listens', async (t) => {
  const etcd = await startEtcd(t);
  const key = await makeKeyFile(t);
  const provider = await startEchoProvider(t);
  process.kill(etcd.pid()!, 'SIGSTOP');
  const serverPort = await freePort();
  const server = startJumper(t, [
    'server', '--listen', `127.0.0.1:${serverPort}`, '--connect', provider.address, '--key', key.path,
    '--register', etcd.url(PREFIX), '--advertise', `127.0.0.1:${serverPort}`,
  ]);
  const balancer = startJumper(t, ['balance', '--listen', `127.0.0.1:${await freePort()}`, '--discover', etcd.url(PREFIX)]);
  // Bound, not yet ready (etcd holds it): a SIGHUP now is kept for later, not fatal.
  await waitListening(serverPort);
  t.false(server.logs.some((l) => l.msg === 'server jumper listening'), 'still starting');
  server.child.kill('SIGHUP');
  await server.waitFor((l) => l.msg === 'cannot register in etcd yet; retrying', 30_000);
  await server.waitFor((l) => l.msg === 'server jumper listening', 5_000);
  await server.waitFor((l) => l.msg === 'SIGHUP: key reloaded; new streams use it, open streams keep theirs', 5_000);
  t.is(server.child.exitCode, null);
  await balancer.waitFor((l) => l.msg === 'etcd unreachable: serving the last known backends, reconnecting', 30_000);
  await balancer.waitFor((l) => l.msg === 'balance jumper listening', 5_000);
  const clientPort = await freePort();
  const client = startJumper(t, ['client', '--listen', `127.0.0.1:${clientPort}`, '--connect', `127.0.0.1:${serverPort}`, '--key', key.path]);
  await client.waitFor((l) => l.msg === 'client jumper listening');
  t.is(await streams(clientPort, 5), 0);
  t.is(provider.connections, 5);
});

maybe('SIGTERM while a frozen etcd holds start-up is kept: once started, the jumper stops cleanly (exit 0) and its socket file goes', async (t) => {
  const etcd = await startEtcd(t);
  const provider = await startEchoProvider(t);
  await etcd.client.put(`${PREFIX}/a`).value(JSON.stringify({ address: provider.address, weight: 1, version: 1 }));
  process.kill(etcd.pid()!, 'SIGSTOP');
  const dir = mkdtempSync(join(tmpdir(), 'jumper-startup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'forward.sock');
  const forward = startJumper(t, ['forward', '--listen', sock, '--discover', etcd.url(PREFIX)]);
  // Bound, and waiting for the first read of the prefix: SIGTERM's default would end it here.
  await pollUntil(() => existsSync(sock), 10_000);
  t.true(existsSync(sock), 'the listener is bound');
  t.false(forward.logs.some((l) => l.msg === 'forward jumper listening'), 'still starting');
  forward.child.kill('SIGTERM');
  t.deepEqual(await forward.exited, { code: 0, signal: null }, forward.stderr());
  const lines = forward.logs.map((l) => l.msg);
  t.true(lines.indexOf('SIGTERM received during start-up: stopping now') > lines.indexOf('forward jumper listening'), lines.join(' | '));
  t.true(lines.includes('stopped'));
  t.false(existsSync(sock), 'the socket file was removed');
});

const asRoot = process.getuid?.() === 0;
if (!asRoot) console.log('# discovery: the --connect-netns test is skipped: entering a network namespace needs root');

(asRoot ? maybe : test.skip)('with --connect-netns, a discovered backend given by host name is ignored with its reason; the others serve and the jumper keeps running', async (t) => {
  const etcd = await startEtcd(t);
  const provider = await startEchoProvider(t);
  await etcd.client.put(`${PREFIX}/good`).value(JSON.stringify({ address: provider.address, weight: 1, version: 1 }));
  const port = await freePort();
  // The namespace is the jumper's own: /proc/self is the jumper when it opens it.
  const forward = startJumper(t, ['forward', '--listen', `127.0.0.1:${port}`, '--discover', etcd.url(PREFIX), '--connect-netns', '/proc/self/ns/net']);
  await forward.waitFor((l) => l.msg === 'forward jumper listening');
  await forward.waitFor((l) => l.msg === 'backend added' && l.backend === provider.address);
  // Through the watch: a name would be resolved in the jumper's namespace, not the target's, so that
  // registration is unusable (as a configured one is refused at start), not fatal.
  await etcd.client.put(`${PREFIX}/named`).value(JSON.stringify({ address: 'backend-by-name:7000', weight: 1, version: 1 }));
  const ignored = await forward.waitFor((l) => l.msg === 'ignoring an unusable registration' && l.key === `${PREFIX}/named`);
  t.regex(String(ignored.problem), /given by address, not name: "backend-by-name"/);
  t.deepEqual([...inRotation(forward)], [provider.address]);
  t.is(await streams(port, 6), 0, `every stream reached the usable backend: ${JSON.stringify(forward.logs.slice(-3))}`);
  t.is(provider.connections, 6);
  t.is(forward.child.exitCode, null);
});

maybe('jumper run: a reload that restarts a discovering link while etcd is down keeps serving the backends the old instance knew', async (t) => {
  const etcd = await startEtcd(t);
  const provider = await startEchoProvider(t);
  await etcd.client.put(`${PREFIX}/by-hand`).value(JSON.stringify({ address: provider.address, weight: 1, version: 1 }));
  const dir = mkdtempSync(join(tmpdir(), 'jumper-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'jumper.yaml');
  const port = await freePort();
  const link = { name: 'lb', role: 'balance', listen: `127.0.0.1:${port}`, discover: etcd.url(PREFIX) };
  writeFileSync(file, stringify({ links: [link] }));
  const supervisor = new Supervisor({ file, logger: captureLogger() });
  t.teardown(() => supervisor.stop(0));
  await supervisor.start();
  t.deepEqual(supervisor.jumper('lb')!.backends().map((b) => b.address), [provider.address]);
  t.is(await streams(port, 3), 0);

  await etcd.stop();
  writeFileSync(file, stringify({ links: [{ ...link, 'drain-timeout': '1s' }] }));
  t.deepEqual(await supervisor.reload(), { added: [], removed: [], changed: ['lb'], unchanged: [] });
  t.deepEqual(supervisor.jumper('lb')!.backends().map((b) => b.address), [provider.address], 'the new instance has the old set');
  t.is(await streams(port, 5), 0, 'streams still reach the provider');
  t.is(provider.connections, 8);
});

/** Whether something listens on `port` now (a balancer with no backends accepts and resets at once: that counts). */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ECONNREFUSED'));
  });
}

maybe('jumper run: a reload starts its changed links together: one waiting on an etcd that does not answer does not hold back the next one', async (t) => {
  const etcd = await startEtcd(t);
  const dir = mkdtempSync(join(tmpdir(), 'jumper-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'jumper.yaml');
  const links = [0, 1].map((i) => ({ name: `lb${i}`, role: 'balance', listen: '127.0.0.1:0', discover: etcd.url(`${PREFIX}/${i}`) }));
  writeFileSync(file, stringify({ links }));
  const supervisor = new Supervisor({ file, logger: captureLogger() });
  t.teardown(() => supervisor.stop(0));
  await supervisor.start();

  // etcd accepts but never answers: a new instance's first read of its prefix waits it out (about 12 s here).
  process.kill(etcd.pid()!, 'SIGSTOP');
  t.teardown(() => void process.kill(etcd.pid()!, 'SIGCONT'));
  // New ports: what answers there is the new instance, not the old one still closing.
  const ports = [await freePort(), await freePort()];
  writeFileSync(file, stringify({ links: links.map((l, i) => ({ ...l, listen: `127.0.0.1:${ports[i]}` })) }));
  const reloaded = supervisor.reload();
  const started = Date.now();
  const bound = await Promise.all(
    ports.map(async (port) => {
      while (Date.now() - started < 3_000) {
        if (await accepting(port)) return Date.now() - started;
        await new Promise((r) => setTimeout(r, 20));
      }
      return undefined;
    }),
  );
  t.true(bound.every((ms) => ms !== undefined), `both new instances listen within 3 s while etcd hangs (ms): ${JSON.stringify(bound)}`);
  process.kill(etcd.pid()!, 'SIGCONT');
  t.deepEqual((await reloaded)?.changed, ['lb0', 'lb1']);
});
