/**
 * The encrypted client/server pair over real loopback sockets.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { exchange, randomBytes, sha256, startBulkProvider, startEchoProvider, startProvider } from './helpers/providers.js';
import { makeKey, withTunnel } from './helpers/tunnel.js';
import { pollUntil } from './helpers/poll.js';

const MiB = 1024 * 1024;

test('64 MiB of random bytes each way arrive hash-equal', async (t) => {
  const download = randomBytes(64 * MiB);
  const upload = randomBytes(64 * MiB);
  const provider = await startBulkProvider(t, download);
  const tunnel = await withTunnel(t, { provider: provider.address });
  const result = await exchange({ port: tunnel.clientPort }, upload);
  t.is(result.ending, 'end');
  t.is(result.received.length, download.length);
  t.is(sha256(result.received), sha256(download));
  t.is(await provider.hashes[0]!, sha256(upload));
  const [summary] = await tunnel.closedOn('server', 1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, upload.length);
  t.is(summary!.bytesDown, download.length);
});

test('the wire does not carry the plaintext', async (t) => {
  const marker = Buffer.from('PLAINTEXT-MARKER-'.repeat(64));
  const provider = await startEchoProvider(t);
  const wireBytes: Buffer[] = [];
  const tunnel = await withTunnel(t, {
    provider: provider.address,
    clientConnect: (serverPort) => tap(t, serverPort, wireBytes),
  });
  const result = await exchange({ port: tunnel.clientPort }, marker);
  t.deepEqual(result.received, marker);
  const wire = Buffer.concat(wireBytes);
  t.true(wire.length > marker.length);
  t.is(wire.indexOf('PLAINTEXT-MARKER'), -1);
});

test('half-close: the provider reads to EOF, then answers', async (t) => {
  const provider = await startProvider(t, (socket) => {
    const h = createHash('sha256');
    socket.on('data', (c: Buffer) => h.update(c));
    socket.once('end', () => socket.end(`sha256:${h.digest('hex')}`));
  });
  const tunnel = await withTunnel(t, { provider: provider.address });
  const body = randomBytes(3 * MiB + 17);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(result.received.toString(), `sha256:${sha256(body)}`);
  t.is(result.ending, 'end');
});

test('half-close: the provider speaks first and closes its side; the consumer keeps sending', async (t) => {
  const banner = Buffer.from('220 banner from the provider\r\n');
  const provider = await startProvider(t, (socket) => socket.end(banner));
  const tunnel = await withTunnel(t, { provider: provider.address });
  const consumer = net.connect({ port: tunnel.clientPort, allowHalfOpen: true });
  const got: Buffer[] = [];
  consumer.on('data', (c: Buffer) => got.push(c));
  await new Promise<void>((resolve) => consumer.once('end', resolve));
  t.deepEqual(Buffer.concat(got), banner);
  // Our direction is still open after the provider's EOF reached us.
  const late = randomBytes(200_000);
  consumer.end(late);
  t.is(await provider.ended(0), 'end');
  t.is(sha256(provider.received[0]!), sha256(late));
  await tunnel.closedOn('server', 1);
  t.is(tunnel.serverClosed[0]!.reason, 'done');
});

test('a server-speaks-first provider works without the consumer sending anything', async (t) => {
  const provider = await startProvider(t, (socket) => socket.write('HELLO\n'));
  const tunnel = await withTunnel(t, { provider: provider.address });
  const consumer = net.connect({ port: tunnel.clientPort });
  const line = await new Promise<string>((resolve) => consumer.once('data', (c: Buffer) => resolve(c.toString())));
  consumer.destroy();
  t.is(line, 'HELLO\n');
});

test('200 parallel streams, each hash-equal', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address });
  const bodies = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + i * 997));
  const results = await Promise.all(bodies.map((b) => exchange({ port: tunnel.clientPort }, b)));
  results.forEach((r, i) => t.is(sha256(r.received), sha256(bodies[i]!), `stream ${i}`));
  t.is(provider.connections, 200);
  const closed = await tunnel.closedOn('server', 200);
  t.true(closed.every((s) => s.reason === 'done'));
});

test('one byte at a time in both directions', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address });
  const socket = net.connect({ port: tunnel.clientPort });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const text = 'byte by byte';
  let got = '';
  for (const ch of text) {
    socket.write(ch);
    got += await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
  }
  socket.destroy();
  t.is(got, text);
});

test('wrong key: handshake fails, the provider sees zero connections, both sides say why', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, clientKey: await makeKey() });
  const result = await exchange({ port: tunnel.clientPort }, Buffer.from('secret request'));
  t.is(result.received.length, 0);
  t.is(result.ending, 'reset');
  const [server] = await tunnel.closedOn('server', 1);
  const [client] = await tunnel.closedOn('client', 1);
  t.is(server!.reason, 'bad_key');
  t.is(client!.reason, 'handshake_rejected');
  t.is(provider.connections, 0);
});

test('a server holding the old and the new key accepts both during a rotation', async (t) => {
  const provider = await startEchoProvider(t);
  const oldKey = await makeKey();
  const newKey = await makeKey();
  const tunnel = await withTunnel(t, { provider: provider.address, clientKey: oldKey, serverKeys: [newKey, oldKey] });
  const first = await exchange({ port: tunnel.clientPort }, Buffer.from('old'));
  tunnel.client.setKey(newKey);
  const second = await exchange({ port: tunnel.clientPort }, Buffer.from('new'));
  t.is(first.received.toString(), 'old');
  t.is(second.received.toString(), 'new');
  const closed = await tunnel.closedOn('server', 2);
  t.deepEqual(closed.map((s) => s.keyFingerprint), [oldKey.fingerprint, newKey.fingerprint]);
});

test('garbage bytes: closed as bad_magic, the provider sees zero connections', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address });
  const result = await exchange({ port: tunnel.serverPort }, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), { keepOpen: true });
  t.is(result.received.length, 0);
  const [server] = await tunnel.closedOn('server', 1);
  t.is(server!.reason, 'bad_magic');
  t.is(provider.connections, 0);
});

test('a client hello of another protocol version is refused as bad_version', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address });
  const hello = Buffer.concat([Buffer.from('JMP'), Buffer.of(2), randomBytes(48)]);
  await exchange({ port: tunnel.serverPort }, hello, { keepOpen: true });
  const [server] = await tunnel.closedOn('server', 1);
  t.is(server!.reason, 'bad_version');
  t.is(provider.connections, 0);
});

/** A TCP relay to the server jumper that lets a test see and alter client→server bytes. */
async function tap(
  t: import('ava').ExecutionContext,
  serverPort: number,
  seen: Buffer[],
  alter?: (chunk: Buffer, offset: number) => Buffer | 'cut' | { last: Buffer },
): Promise<string> {
  const relay = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ port: serverPort, host: '127.0.0.1', allowHalfOpen: true });
    let offset = 0;
    inbound.on('data', (chunk: Buffer) => {
      const copy = Buffer.from(chunk);
      seen.push(copy);
      const result = alter ? alter(copy, offset) : copy;
      offset += chunk.length;
      if (result === 'cut' || (typeof result === 'object' && 'last' in result)) {
        // Forward up to the cut point, then end toward the server without more.
        if (typeof result === 'object' && 'last' in result) outbound.write(result.last);
        inbound.destroy();
        outbound.end();
        return;
      }
      outbound.write(result);
    });
    outbound.on('data', (c: Buffer) => inbound.write(c));
    inbound.on('end', () => outbound.end());
    outbound.on('end', () => inbound.end());
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => relay.close());
  return `127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
}

/** Offset past hello (52) + liveness record (19): the first data record. */
const FIRST_DATA_OFFSET = 52 + 19;

test('one flipped bit in a record: torn down as tampered, no corrupted byte delivered', async (t) => {
  const provider = await startEchoProvider(t);
  const body = randomBytes(256 * 1024);
  const flipAt = FIRST_DATA_OFFSET + 100_000;
  const tunnel = await withTunnel(t, {
    provider: provider.address,
    clientConnect: (port) =>
      tap(t, port, [], (chunk, offset) => {
        if (flipAt >= offset && flipAt < offset + chunk.length) chunk[flipAt - offset]! ^= 0x01;
        return chunk;
      }),
  });
  const result = await exchange({ port: tunnel.clientPort }, body);
  const [server] = await tunnel.closedOn('server', 1);
  t.is(server!.reason, 'tampered');
  const delivered = Buffer.concat(provider.received[0] ?? []);
  // Whatever reached the provider is an exact prefix of what was sent, and stops before the flipped record.
  t.true(delivered.length < flipAt - FIRST_DATA_OFFSET);
  t.deepEqual(delivered, body.subarray(0, delivered.length));
  t.is(await provider.ended(0), 'reset');
  t.is(result.ending, 'reset');
});

test('a stream cut without the end-of-stream record is reported as truncated, not EOF', async (t) => {
  const provider = await startEchoProvider(t);
  const cutAt = FIRST_DATA_OFFSET + 50_000;
  const tunnel = await withTunnel(t, {
    provider: provider.address,
    clientConnect: (port) =>
      tap(t, port, [], (chunk, offset) => (offset + chunk.length > cutAt ? { last: chunk.subarray(0, cutAt - offset) } : chunk)),
  });
  await exchange({ port: tunnel.clientPort }, randomBytes(200_000));
  const [server] = await tunnel.closedOn('server', 1);
  t.is(server!.reason, 'truncated');
  t.is(await provider.ended(0), 'reset');
});

test('a replayed client hello never reaches the provider', async (t) => {
  const provider = await startEchoProvider(t);
  const captured: Buffer[] = [];
  const tunnel = await withTunnel(t, {
    provider: provider.address,
    // Only the replayed hello must time out; the genuine handshake must fit too, on a loaded machine.
    handshakeTimeoutMs: 1500,
    clientConnect: (port) => tap(t, port, captured),
  });
  await exchange({ port: tunnel.clientPort }, Buffer.from('genuine'));
  t.is(provider.connections, 1);
  const hello = Buffer.concat(captured).subarray(0, 52);
  // Replay the hello alone, then the whole captured session.
  const replayHello = await exchange({ port: tunnel.serverPort }, hello, { keepOpen: true });
  const replaySession = await exchange({ port: tunnel.serverPort }, Buffer.concat(captured), { keepOpen: true });
  const closed = await tunnel.closedOn('server', 3);
  t.is(closed[1]!.reason, 'handshake_timeout');
  t.is(closed[2]!.reason, 'tampered');
  t.is(replayHello.received.length, 48); // just the server hello: nothing from the provider
  t.is(provider.connections, 1);
});

test('provider refused: the client is told why in an ABORT record and resets the consumer', async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const tunnel = await withTunnel(t, { provider: `127.0.0.1:${closedPort}` });
  const result = await exchange({ port: tunnel.clientPort }, Buffer.from('x'), { keepOpen: true });
  t.is(result.ending, 'reset');
  const [server] = await tunnel.closedOn('server', 1);
  const [client] = await tunnel.closedOn('client', 1);
  t.is(server!.reason, 'provider_refused');
  t.is(client!.reason, 'provider_refused');
  t.is(client!.error?.constructor.name, 'PeerAbortError');
});

test('over --max-connections, new streams wait and are served as others close', async (t) => {
  const provider = await startEchoProvider(t);
  const tunnel = await withTunnel(t, { provider: provider.address, maxConnections: 2 });
  const holders = [0, 1].map(() => net.connect({ port: tunnel.clientPort }));
  await Promise.all(holders.map((s) => new Promise((r) => s.once('connect', r))));
  holders.forEach((s) => s.write('hold'));
  await pollUntil(() => provider.connections >= 2, 5000);
  const waiting = Promise.all([1, 2, 3].map((i) => exchange({ port: tunnel.clientPort }, Buffer.from(`late-${i}`))));
  await pollUntil(() => tunnel.client.stats().waiting >= 3, 5000);
  t.is(tunnel.client.stats().waiting, 3);
  t.is(provider.connections, 2);
  holders.forEach((s) => s.end());
  const results = await waiting;
  t.deepEqual(results.map((r) => r.received.toString()), ['late-1', 'late-2', 'late-3']);
  t.is(provider.connections, 5);
});

test('close() drains: an open stream finishes, new ones are refused', async (t) => {
  const provider = await startProvider(t, (socket) => socket.once('end', () => setTimeout(() => socket.end('late answer'), 300)));
  const tunnel = await withTunnel(t, { provider: provider.address });
  const pending = exchange({ port: tunnel.clientPort }, Buffer.from('q'));
  await new Promise((r) => setTimeout(r, 100));
  const closing = tunnel.client.close({ drainTimeoutMs: 5000 });
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ port: tunnel.clientPort });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.once('connect', () => resolve('connected'));
  });
  t.is(refused, 'ECONNREFUSED');
  t.is((await pending).received.toString(), 'late answer');
  await closing;
});

test('close() cuts streams still open after the drain timeout', async (t) => {
  const provider = await startProvider(t, () => {});
  const tunnel = await withTunnel(t, { provider: provider.address });
  const pending = exchange({ port: tunnel.clientPort }, Buffer.from('q'), { keepOpen: true });
  await new Promise((r) => setTimeout(r, 100));
  await tunnel.client.close({ drainTimeoutMs: 200 });
  t.is((await pending).ending, 'reset');
  t.is(tunnel.clientClosed[0]!.reason, 'drain_timeout');
});

test('Unix socket and IPv6 addresses, for listen and connect', async (t) => {
  const dir = await import('node:fs').then((fs) => fs.mkdtempSync('/tmp/jumper-test-'));
  t.teardown(() => import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true })));
  const provider = await startEchoProvider(t, { path: `${dir}/provider.sock` });
  const key = await makeKey();
  const { createServer, createClient } = await import('../src/index.js');
  const server = createServer({ listen: `${dir}/server.sock`, connect: provider.address, key });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const client = createClient({ listen: '[::1]:0', connect: `${dir}/server.sock`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  t.is(client.address(), `[::1]:${client.port()}`);
  const body = randomBytes(100_000);
  const result = await exchange({ host: '::1', port: client.port()! }, body);
  t.is(sha256(result.received), sha256(body));
});

test('an ABORT reason from the peer becomes a log key only if it is a known reason', async (t) => {
  const { peerAbort } = await import('../src/proto/pipe.js');
  t.is((peerAbort('provider_refused') as { reason?: string }).reason, 'provider_refused');
  t.is((peerAbort('x'.repeat(60)) as { reason?: string }).reason, 'peer_abort');
  t.is((peerAbort('anything_new_1') as { reason?: string }).reason, 'peer_abort');
  // Errno names pass (a peer's failing connect); other words starting with e do not.
  t.is((peerAbort('ehostunreach') as { reason?: string }).reason, 'ehostunreach');
  for (const word of ['evil', 'e'.repeat(60), 'eaaab']) t.is((peerAbort(word) as { reason?: string }).reason, 'peer_abort', word);
});
