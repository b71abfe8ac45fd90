/**
 * Client preconnect (src/roles/preconnect.ts): wires handshaken ahead of
 * demand, over real loopback sockets against a real server jumper.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import test from 'ava';
import { JumperMetrics } from '../src/admin/metrics.js';
import { createClient, createServer } from '../src/index.js';
import { nativeAvailable } from '../src/native/binding.js';
import { parsePromText } from './helpers/prom-text.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKey, withTunnel } from './helpers/tunnel.js';

// Seeing a consumer's reset before reading needs the addon's peekSocket.
const peekTest = nativeAvailable() ? test : test.skip;
/** Counts every descriptor of the process: no other test of this file may run meanwhile. */
const peekSerialTest = nativeAvailable() ? test.serial : test.skip;
if (!nativeAvailable()) console.log('skipping reset-consumer tests: the native addon is not built');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` every 10 ms until it holds; fail after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('wires are handshaken before any consumer; a stream takes one, arrives hash-equal, and is the only one the provider sees', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 2, preconnectIdleMs: 4000 });
  await until(() => tunnel.client.preconnectStats()!.ready === 2, 3000, 'two ready wires');
  t.is(tunnel.server.stats().total, 2, 'the server accepted the two preconnects');
  t.is(provider.connections, 0, 'a preconnected wire never reaches the provider');

  const upload = randomBytes(1024 * 1024 + 7);
  const result = await exchange({ port: tunnel.clientPort }, upload);
  t.is(result.ending, 'end');
  t.is(sha256(result.received), sha256(upload));
  const stats = tunnel.client.preconnectStats()!;
  t.is(stats.hits, 1);
  t.is(stats.misses, 0);
  t.is(provider.connections, 1);
  const [summary] = await tunnel.closedOn('server', 1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, upload.length);
  t.is(summary!.keyFingerprint, tunnel.key.fingerprint);
  // The pool refills after a take.
  await until(() => tunnel.client.preconnectStats()!.ready === 2, 3000, 'the pool to refill');
  t.is(tunnel.server.stats().total, 3);
});

test('metrics: takes by outcome, ready wires, and "unused" is not a failure on the server', async (t) => {
  const provider = await startEchoProvider(t);
  // Idle long enough for the checks below to see the ready wire first on a loaded machine.
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 1, preconnectIdleMs: 1500 });
  const metrics = new JumperMetrics({ processMetrics: false });
  metrics.attach('c', tunnel.client);
  metrics.attach('s', tunnel.server);
  await until(() => tunnel.client.preconnectStats()!.ready === 1, 3000, 'a ready wire');
  let m = parsePromText(await metrics.text());
  t.is(m.get('jumper_preconnect_ready', { link: 'c' }), 1);
  const body = randomBytes(5000);
  t.is(sha256((await exchange({ port: tunnel.clientPort }, body)).received), sha256(body));
  // The refilled wire sees no demand and is retired; the server ends it as "unused".
  await until(() => tunnel.serverClosed.some((x) => x.reason === 'unused'), 5000, 'a retired wire');
  m = parsePromText(await metrics.text());
  t.is(m.get('jumper_preconnect_total', { link: 'c', outcome: 'hit' }), 1);
  t.is(m.get('jumper_preconnect_total', { link: 'c', outcome: 'retired' }), 1);
  t.is(m.get('jumper_preconnect_ready', { link: 'c' }), 0);
  t.is(m.get('jumper_connection_failures_total', { link: 's', reason: 'unused' }), undefined);
  await tunnel.closedOn('server', 2); // the stream and the retired wire, so that failed counts both
  t.is(tunnel.server.stats().failed, 0);
});

test('an idle client retires its wires: the server ends them as "unused" (no failure, no provider dial) and makes no more', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 2, preconnectIdleMs: 300 });
  const closed = await tunnel.closedOn('server', 2);
  t.deepEqual(
    closed.map((s) => s.reason),
    ['unused', 'unused'],
  );
  t.is(tunnel.server.stats().failed, 0);
  t.deepEqual(tunnel.server.stats().failures, {});
  t.is(provider.connections, 0);
  // No demand since: nothing is preconnected again.
  await sleep(800);
  t.is(tunnel.server.stats().total, 2);
  const stats = tunnel.client.preconnectStats()!;
  t.is(stats.ready, 0);
  t.is(stats.retired, 2);
  // A stream after the idle period takes the normal path and still works.
  const body = randomBytes(64 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(sha256(result.received), sha256(body));
  t.is(tunnel.client.preconnectStats()!.misses, 1);
});

test('a ready wire the server closed is not used: the stream is served over another', async (t) => {
  const provider = await startEchoProvider(t);
  // Misconfigured on purpose: the server's handshake timeout (1.5 s) is below the client's idle time.
  const tunnel = await withTunnel(t, { provider: provider.address, handshakeTimeoutMs: 1500, preconnect: 1, preconnectIdleMs: 5000 });
  await until(() => tunnel.client.preconnectStats()!.lost >= 1, 5000, 'a ready wire to be lost');
  const body = randomBytes(256 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(result.ending, 'end');
  t.is(sha256(result.received), sha256(body));
  await until(() => tunnel.serverClosed.some((s) => s.reason === 'done'), 3000, "the stream's summary");
  t.is(tunnel.serverClosed.filter((s) => s.reason === 'done').length, 1);
  t.is(provider.connections, 1);
  t.true(tunnel.serverClosed.filter((s) => s.reason !== 'done').every((s) => s.reason === 'handshake_timeout'));
});

test('preconnects to a server with another key fail and back off; a consumer gets the usual handshake_rejected', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, clientKey: await makeKey(), preconnect: 2, preconnectIdleMs: 4000 });
  await sleep(1000);
  // A stalled machine makes fewer attempts, never more.
  await until(() => tunnel.client.preconnectStats()!.failed >= 2, 5000, 'two failed preconnects');
  const failed = tunnel.client.preconnectStats()!.failed;
  // 2 at once, then one retry after 100, 200, 400 ms...: a handful, not a storm.
  t.true(failed >= 2 && failed <= 8, `failed preconnects in 1 s: ${failed}`);
  t.is(tunnel.client.preconnectStats()!.ready, 0);
  const result = await exchange({ port: tunnel.clientPort }, Buffer.from('x'));
  t.is(result.received.length, 0);
  const [summary] = await tunnel.closedOn('client', 1);
  t.is(summary!.reason, 'handshake_rejected');
  t.is(provider.connections, 0);
});

test('a key rotation retires ready wires; new streams use the new key', async (t) => {
  const provider = await startEchoProvider(t);
  const oldKey = await makeKey();
  const newKey = await makeKey();
  const tunnel = await withTunnel(t, { provider: provider.address, clientKey: oldKey, serverKeys: [newKey, oldKey], preconnect: 2, preconnectIdleMs: 4000 });
  await until(() => tunnel.client.preconnectStats()!.ready === 2, 3000, 'two ready wires');
  tunnel.client.setKey(newKey);
  t.is(tunnel.client.preconnectStats()!.retired, 2);
  const body = randomBytes(10_000);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(sha256(result.received), sha256(body));
  const closed = await tunnel.closedOn('server', 3);
  t.deepEqual(closed.map((s) => s.reason).sort(), ['done', 'unused', 'unused']);
  t.is(closed.find((s) => s.reason === 'done')!.keyFingerprint, newKey.fingerprint);
});

test('preconnect is refused with the spiped protocol and for a negative size; the default auto is off for spiped', (t) => {
  const base = { listen: '127.0.0.1:0', connect: '127.0.0.1:1' };
  return makeKey().then((key) => {
    t.throws(() => createClient({ ...base, key, protocol: 'spiped', preconnect: 1 }), { code: 'JUMPER_ERR_INVALID_ARG' });
    t.throws(() => createClient({ ...base, key, preconnect: -1 }), { code: 'JUMPER_ERR_INVALID_ARG' });
    t.throws(() => createClient({ ...base, key, preconnect: 'many' as unknown as number }), { code: 'JUMPER_ERR_INVALID_ARG' });
    t.throws(() => createClient({ ...base, key, preconnect: 1001 }), { code: 'JUMPER_ERR_INVALID_ARG' });
    t.notThrows(() => createClient({ ...base, key, protocol: 'spiped', preconnect: 0 }));
    const spiped = createClient({ ...base, key, protocol: 'spiped' });
    t.is(spiped.preconnectSetting, 0);
    t.is(spiped.preconnectStats(), undefined);
    const native = createClient({ ...base, key });
    t.is(native.preconnectSetting, 'auto');
    t.deepEqual(native.preconnectStats(), { ready: 0, hits: 0, misses: 0, retired: 0, lost: 0, failed: 0 });
  });
});

test('auto (the default): a lone stream makes no wire; streams in a row keep one ready, the next takes it; idle retires it', async (t) => {
  const provider = await startEchoProvider(t);
  // 1.5 s: the second stream must come within it of the first, even on a slow machine.
  const tunnel = await withTunnel(t, { provider: provider.address, preconnectIdleMs: 1500 });
  t.is(tunnel.client.preconnectSetting, 'auto');
  const send = async () => {
    const body = randomBytes(32 * 1024);
    const result = await exchange({ port: tunnel.clientPort }, body);
    t.is(sha256(result.received), sha256(body));
  };
  // Nothing at start, and nothing after one stream.
  await sleep(200);
  t.is(tunnel.server.stats().total, 0, 'no wire before any stream');
  await send();
  await sleep(300);
  t.is(tunnel.server.stats().total, 1, 'a lone stream costs one connection to the server');
  t.like(tunnel.client.preconnectStats()!, { ready: 0, misses: 1, hits: 0 });
  // A second stream within the idle time: one wire is made for the next.
  await send();
  await until(() => tunnel.client.preconnectStats()!.ready === 1, 3000, 'one ready wire');
  await sleep(100);
  t.is(tunnel.server.stats().total, 3, 'two streams and one wire: auto dials one wire, not more');
  await send();
  t.like(tunnel.client.preconnectStats()!, { misses: 2, hits: 1 });
  await until(() => tunnel.client.preconnectStats()!.ready === 1, 3000, 'the wire to be refilled');
  // Quiet: the wire is retired as unused, and none follows it.
  await until(() => tunnel.client.preconnectStats()!.retired === 1, 4000, 'the wire to retire');
  await sleep(300);
  t.like(tunnel.client.preconnectStats()!, { ready: 0, retired: 1, lost: 0, failed: 0 });
  // A lone stream after the quiet spell makes no wire again.
  await send();
  await sleep(400);
  t.like(tunnel.client.preconnectStats()!, { ready: 0, misses: 3, hits: 1, retired: 1 });
  await until(() => tunnel.serverClosed.length === 5, 3000, "the server's five summaries");
  t.deepEqual(tunnel.serverClosed.map((s) => s.reason).sort(), ['done', 'done', 'done', 'done', 'unused']);
  t.is(tunnel.server.stats().total, 5);
  t.is(provider.connections, 4, 'the provider saw the four streams and nothing else');
  t.is(tunnel.server.stats().failed, 0);
});

test('peekSocket sees the kernel state before the event loop does: open, data, eof, reset', async (t) => {
  const { peekSocket } = await import('../src/native/peek.js');
  const { nativeAvailable, loadNative } = await import('../src/native/binding.js');
  if (!nativeAvailable()) {
    t.log('addon not built: peekSocket returns undefined (skipped)');
    t.is(peekSocket(new (await import('node:net')).Socket()), undefined);
    return;
  }
  const net = await import('node:net');
  const accepted: import('node:net').Socket[] = [];
  // Not reading, as a wire parked between events is not read: the kernel keeps what arrives.
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => accepted.push(s)).listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const pair = async (): Promise<[import('node:net').Socket, import('node:net').Socket]> => {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    await new Promise((resolve) => c.once('connect', resolve));
    await until(() => accepted.length > 0, 2000, 'accept');
    const s = accepted.shift()!;
    s.on('error', () => undefined);
    t.teardown(() => {
      c.destroy();
      s.destroy();
    });
    return [c, s];
  };
  const [c1, s1] = await pair();
  t.is(peekSocket(s1), 'open');
  c1.write('x');
  await until(() => peekSocket(s1) === 'data', 2000, 'data');
  t.is(s1.readableLength, 0, 'peeking consumed nothing');
  const [c2, s2] = await pair();
  c2.end();
  await until(() => peekSocket(s2) === 'eof', 2000, 'eof');
  t.false(s2.readableEnded, 'the event loop has not seen the FIN yet');
  const [c3, s3] = await pair();
  c3.resetAndDestroy();
  await until(() => peekSocket(s3) === 'ECONNRESET', 2000, 'reset');
  const addon = loadNative() as unknown as { peekSocket(fd: unknown): string };
  t.throws(() => addon.peekSocket(-1), { instanceOf: RangeError });
  t.throws(() => addon.peekSocket('3'), { instanceOf: TypeError });
});

test('a draining server keeps a ready wire open and serves the stream that arrives on it', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 1, preconnectIdleMs: 4000 });
  await until(() => tunnel.client.preconnectStats()!.ready === 1, 3000, 'a ready wire');
  let drained = false;
  const draining = tunnel.server.close({ drainTimeoutMs: 10_000 }).then(() => (drained = true));
  await sleep(100);
  t.false(drained, 'the handshaken wire holds the drain open');
  const body = randomBytes(256 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(result.ending, 'end');
  t.is(sha256(result.received), sha256(body));
  t.like(tunnel.client.preconnectStats()!, { hits: 1, misses: 0 });
  // The refill finds the listener closed; the drain ends once the stream is done.
  await draining;
  t.is(provider.connections, 1);
  t.deepEqual(tunnel.serverClosed.map((s) => s.reason), ['done']);
});

/** Connect and reset (SO_LINGER 0) while this event loop is blocked, so the reset is in the kernel before the jumper accepts. */
function resetProbe(port: number, count = 1): void {
  const probe = [
    'import socket, struct',
    `for _ in range(${count}):`,
    `    s = socket.create_connection(("127.0.0.1", ${port}))`,
    '    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))',
    '    s.close()',
  ].join('\n');
  execFileSync('python3', ['-c', probe]);
}

peekTest('a consumer that reset before its first byte (a health check) spends no ready wire and never reaches the server or provider', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 1, preconnectIdleMs: 4000 });
  await until(() => tunnel.client.preconnectStats()!.ready === 1, 3000, 'a ready wire');
  resetProbe(tunnel.clientPort);
  const [summary] = await tunnel.closedOn('client', 1);
  t.is(summary!.reason, 'no_data');
  await sleep(200);
  t.like(tunnel.client.preconnectStats()!, { ready: 1, hits: 0, misses: 0 });
  t.is(tunnel.server.stats().total, 1, 'the server saw only the ready wire');
  t.is(provider.connections, 0);
  // The wire is still there for a real stream.
  const body = randomBytes(64 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(sha256(result.received), sha256(body));
  t.like(tunnel.client.preconnectStats()!, { hits: 1, misses: 0 });
});

peekTest('without preconnect, a consumer that reset before its first byte is no_data and the client dials nothing for it', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 0 });
  resetProbe(tunnel.clientPort);
  const [summary] = await tunnel.closedOn('client', 1);
  t.is(summary!.reason, 'no_data');
  await sleep(200);
  t.is(tunnel.server.stats().total, 0, 'no connection to the server');
  t.is(tunnel.client.stats().failed, 0);
  t.is(provider.connections, 0);
});

test('balanced over two servers, a ready wire to a backend removed from the set is retired, not used: every later stream reaches the other provider', async (t) => {
  const key = await makeKey();
  const providers = [await startEchoProvider(t), await startEchoProvider(t)];
  const servers = await Promise.all(
    providers.map((p) => createServer({ listen: '127.0.0.1:0', connect: p.address, key, handshakeTimeoutMs: 10_000 }).listen()),
  );
  const addresses = servers.map((s) => `127.0.0.1:${s.port()!}`);
  const client = await createClient({ listen: '127.0.0.1:0', connect: addresses, key, preconnect: 2, preconnectIdleMs: 8_000 }).listen();
  t.teardown(async () => {
    await client.close({ drainTimeoutMs: 0 });
    await Promise.all(servers.map((s) => s.close({ drainTimeoutMs: 0 })));
  });
  // Round-robin: one ready wire to each server.
  await until(() => client.preconnectStats()!.ready === 2 && servers.every((s) => s.stats().total === 1), 3000, 'a ready wire to each server');
  client.updateBackends([{ address: addresses[1]!, weight: 1 }]);
  const port = client.port()!;
  for (let i = 0; i < 4; i++) {
    const body = randomBytes(64 * 1024 + i);
    const result = await exchange({ port }, body);
    t.is(result.ending, 'end');
    t.is(sha256(result.received), sha256(body));
  }
  t.is(providers[0]!.connections, 0, 'no stream went to the removed backend');
  t.is(providers[1]!.connections, 4);
  t.is(client.preconnectStats()!.retired, 1, 'the wire to the removed backend was retired');
  await until(() => servers[0]!.stats().total === 1 && servers[0]!.stats().active === 0, 3000, 'the removed server to end its wire');
});

peekSerialTest('consumers that reset before their first byte leave no socket behind: the process holds no more descriptors after 200 of them', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, preconnect: 0 });
  const fds = () => readdirSync('/proc/self/fd').length;
  // One stream first, so lazily opened descriptors (epoll, the reactor) exist before counting.
  const body = randomBytes(1024);
  t.is(sha256((await exchange({ port: tunnel.clientPort }, body)).received), sha256(body));
  await tunnel.closedOn('client', 1);
  const before = fds();
  resetProbe(tunnel.clientPort, 200);
  const closed = await tunnel.closedOn('client', 201);
  t.is(closed.filter((s) => s.reason === 'no_data').length, 200);
  await sleep(100);
  t.true(fds() - before < 20, `descriptors: ${before} before, ${fds()} after 200 reset consumers`);
});
