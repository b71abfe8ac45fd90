/**
 * Wire compatibility with the real spiped 1.6 binary (/usr/bin/spiped):
 *
 *   consumer -> jumper client -> spiped -d -> provider
 *   consumer -> spiped -e -> jumper server -> provider
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { PfsMode } from '../src/proto/spiped/handshake.js';
import { exchange, randomBytes, sha256, startBulkProvider, startProvider, type Provider } from './helpers/providers.js';
import { freePort, makeKeyFile, startJumperSpipedClient, startJumperSpipedServer, startSpiped, type JumperSide } from './helpers/spiped.js';

const MiB = 1024 * 1024;
const BULK_BYTES = 16 * MiB;

/** consumer -> jumper client -> spiped -d -> provider. */
async function jumperToSpiped(t: ExecutionContext, provider: Provider, options: { spipedFlags?: string[]; pfs?: PfsMode; wrongKey?: boolean } = {}) {
  const keyFile = await makeKeyFile(t);
  const clientKey = options.wrongKey ? (await makeKeyFile(t)).key : keyFile.key;
  const spiped = await startSpiped(t, { mode: 'decrypt', target: provider.port, keyPath: keyFile.path, flags: options.spipedFlags ?? [] });
  const client = await startJumperSpipedClient(t, { key: clientKey, target: spiped.port, pfs: options.pfs ?? 'default' });
  return { client, spiped };
}

/** consumer -> spiped -e -> jumper server -> provider. */
async function spipedToJumper(t: ExecutionContext, provider: Provider, options: { spipedFlags?: string[]; pfs?: PfsMode; wrongKey?: boolean } = {}) {
  const keyFile = await makeKeyFile(t);
  const serverKey = options.wrongKey ? (await makeKeyFile(t)).key : keyFile.key;
  const server = await startJumperSpipedServer(t, { key: serverKey, target: provider.port, pfs: options.pfs ?? 'default' });
  const spiped = await startSpiped(t, { mode: 'encrypt', target: server.port, keyPath: keyFile.path, flags: options.spipedFlags ?? [] });
  return { server, spiped };
}

async function bulk(t: ExecutionContext, path: 'jumper->spiped' | 'spiped->jumper', options: { spipedFlags?: string[]; pfs?: PfsMode }) {
  const download = randomBytes(BULK_BYTES);
  const upload = randomBytes(BULK_BYTES);
  const provider = await startBulkProvider(t, download);
  let port: number;
  let side: JumperSide;
  if (path === 'jumper->spiped') {
    const { client } = await jumperToSpiped(t, provider, options);
    port = client.port;
    side = client;
  } else {
    const { server, spiped } = await spipedToJumper(t, provider, options);
    port = spiped.port;
    side = server;
  }
  const result = await exchange({ port }, upload);
  t.is(result.ending, 'end');
  t.is(result.received.length, download.length);
  t.is(sha256(result.received), sha256(download));
  t.is(await provider.hashes[0]!, sha256(upload));
  const [summary] = await side.closedCount(1);
  t.is(summary!.reason, 'done', summary!.error?.message);
  t.is(summary!.bytesUp, upload.length);
  t.is(summary!.bytesDown, download.length);
}

test.serial('16 MiB each way: jumper client -> spiped -d (DH)', (t) => bulk(t, 'jumper->spiped', {}));
test.serial('16 MiB each way: jumper client -> spiped -d -f', (t) => bulk(t, 'jumper->spiped', { spipedFlags: ['-f'] }));
test.serial('16 MiB each way: jumper client (pfs off) -> spiped -d', (t) => bulk(t, 'jumper->spiped', { pfs: 'off' }));
test.serial('16 MiB each way: spiped -e -> jumper server (DH)', (t) => bulk(t, 'spiped->jumper', {}));
test.serial('16 MiB each way: spiped -e -f -> jumper server', (t) => bulk(t, 'spiped->jumper', { spipedFlags: ['-f'] }));
test.serial('16 MiB each way: spiped -e -> jumper server (pfs off)', (t) => bulk(t, 'spiped->jumper', { pfs: 'off' }));
test.serial('both sides requiring PFS (-g / require) interoperate', async (t) => {
  await bulk(t, 'jumper->spiped', { pfs: 'require', spipedFlags: ['-g'] });
});

/** Reads the request to EOF, then answers with its hash: needs half-close carried both ways. */
function startHashAnswerProvider(t: ExecutionContext): Promise<Provider> {
  return startProvider(t, (socket) => {
    const h = createHash('sha256');
    socket.on('data', (c: Buffer) => h.update(c));
    socket.once('end', () => socket.end(`sha256:${h.digest('hex')}`));
  });
}

/** Send, half-close, then read the answer to a clean EOF ('' when the stream was reset). */
async function requestAfterHalfClose(port: number, request: Buffer): Promise<string> {
  const result = await exchange({ port }, request);
  return result.ending === 'end' ? result.received.toString() : `(${result.ending})`;
}

test('half-close is carried: jumper client -> spiped -d', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { client } = await jumperToSpiped(t, provider);
  const request = randomBytes(200_000);
  t.is(await requestAfterHalfClose(client.port, request), `sha256:${sha256(request)}`);
  const [summary] = await client.closedCount(1);
  t.is(summary!.reason, 'done');
});

test('half-close is carried: spiped -e -> jumper server', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { server, spiped } = await spipedToJumper(t, provider);
  const request = randomBytes(200_000);
  t.is(await requestAfterHalfClose(spiped.port, request), `sha256:${sha256(request)}`);
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'done');
  t.is(provider.endings[0], 'end');
});

test('an empty request with an immediate half-close still gets its answer', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { server, spiped } = await spipedToJumper(t, provider);
  t.is(await requestAfterHalfClose(spiped.port, Buffer.alloc(0)), `sha256:${sha256(Buffer.alloc(0))}`);
  t.is((await server.closedCount(1))[0]!.reason, 'done');
});

test('wrong key: jumper client against spiped -d fails with bad_key, provider gets no byte', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { client } = await jumperToSpiped(t, provider, { wrongKey: true });
  const result = await exchange({ port: client.port }, Buffer.from('secret request'));
  t.is(result.received.length, 0);
  t.not(result.ending, 'end', 'the consumer must not mistake the failure for a clean EOF');
  const [summary] = await client.closedCount(1);
  t.is(summary!.reason, 'bad_key');
  // spiped 1.6.2 -d dials its target on accept, before the handshake: the
  // provider may see a connection, but never a byte.
  t.true(provider.connections <= 1);
  t.true(provider.received.every((chunks) => chunks.length === 0));
});

test('wrong key: spiped -e against jumper server fails with bad_key, provider never dialled', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { server, spiped } = await spipedToJumper(t, provider, { wrongKey: true });
  const result = await exchange({ port: spiped.port }, Buffer.from('secret request'));
  t.is(result.received.length, 0);
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'bad_key');
  t.is(provider.connections, 0);
});

test('pfs require: jumper client refuses spiped -d -f (pfs_required)', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { client } = await jumperToSpiped(t, provider, { pfs: 'require', spipedFlags: ['-f'] });
  const result = await exchange({ port: client.port }, Buffer.from('request'));
  t.is(result.received.length, 0);
  const [summary] = await client.closedCount(1);
  t.is(summary!.reason, 'pfs_required');
  t.true(provider.received.every((chunks) => chunks.length === 0));
});

test('pfs require: jumper server refuses spiped -e -f (pfs_required), provider never dialled', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { server, spiped } = await spipedToJumper(t, provider, { pfs: 'require', spipedFlags: ['-f'] });
  const result = await exchange({ port: spiped.port }, Buffer.from('request'));
  t.is(result.received.length, 0);
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'pfs_required');
  t.is(provider.connections, 0);
});

test('spiped -d -g refuses a jumper client without PFS (handshake_rejected)', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { client } = await jumperToSpiped(t, provider, { pfs: 'off', spipedFlags: ['-g'] });
  const result = await exchange({ port: client.port }, Buffer.from('request'));
  t.is(result.received.length, 0);
  const [summary] = await client.closedCount(1);
  t.is(summary!.reason, 'handshake_rejected');
});

test('spiped -e -g refuses a jumper server without PFS: the consumer gets nothing', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const { spiped } = await spipedToJumper(t, provider, { pfs: 'off', spipedFlags: ['-g'] });
  const result = await exchange({ port: spiped.port }, Buffer.from('request'));
  t.is(result.received.length, 0);
  t.true(provider.received.every((chunks) => chunks.length === 0));
});

test('jumper client <-> jumper server in spiped mode, with a tampering middlebox', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const keyFile = await makeKeyFile(t);
  const server = await startJumperSpipedServer(t, { key: keyFile.key, target: provider.port });
  // Flip one bit of the first data packet (after 32 + 288 handshake bytes).
  const HANDSHAKE_BYTES = 32 + 288;
  const proxy = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    let seen = 0;
    inbound.on('data', (c: Buffer) => {
      const at = HANDSHAKE_BYTES + 100 - seen;
      if (at >= 0 && at < c.length) {
        c = Buffer.from(c);
        c[at]! ^= 0x80;
      }
      seen += c.length;
      outbound.write(c);
    });
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => proxy.close());
  const client = await startJumperSpipedClient(t, { key: keyFile.key, target: (proxy.address() as net.AddressInfo).port });
  const result = await exchange({ port: client.port }, randomBytes(5000));
  t.is(result.received.length, 0);
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'tampered');
});

test('a FIN inside a packet is truncation, not a clean end', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const keyFile = await makeKeyFile(t);
  const server = await startJumperSpipedServer(t, { key: keyFile.key, target: provider.port });
  // Forward the handshake and half of the first packet, then FIN.
  const CUT_AT = 32 + 288 + 530;
  const proxy = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    let sent = 0;
    inbound.on('data', (c: Buffer) => {
      if (sent >= CUT_AT) return;
      const part = c.subarray(0, CUT_AT - sent);
      sent += part.length;
      outbound.write(part);
      if (sent >= CUT_AT) outbound.end();
    });
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => proxy.close());
  const client = await startJumperSpipedClient(t, { key: keyFile.key, target: (proxy.address() as net.AddressInfo).port });
  void exchange({ port: client.port }, randomBytes(5000), { keepOpen: true }).catch(() => {});
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'truncated');
  t.deepEqual(provider.received[0] ?? [], [], 'nothing of the cut packet reached the provider');
});

test('a silent client times out the handshake; the provider is never dialled', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const keyFile = await makeKeyFile(t);
  const server = await startJumperSpipedServer(t, { key: keyFile.key, target: provider.port, handshakeTimeoutMs: 200 });
  const socket = net.connect({ port: server.port, host: '127.0.0.1' });
  socket.on('error', () => {});
  t.teardown(() => socket.destroy());
  const [summary] = await server.closedCount(1);
  t.is(summary!.reason, 'handshake_timeout');
  t.is(provider.connections, 0);
});

test('provider down behind the jumper server: the spiped consumer is cut, reason provider_refused', async (t) => {
  const keyFile = await makeKeyFile(t);
  const deadPort = await freePort();
  const server = await startJumperSpipedServer(t, { key: keyFile.key, target: deadPort });
  const spiped = await startSpiped(t, { mode: 'encrypt', target: server.port, keyPath: keyFile.path });
  const result = await exchange({ port: spiped.port }, Buffer.from('hello'));
  t.is(result.received.length, 0);
  t.is((await server.closedCount(1))[0]!.reason, 'provider_refused');
});

test('keep-alives off (-j / keepAlive false) and 20 parallel streams through spiped -d', async (t) => {
  const provider = await startHashAnswerProvider(t);
  const keyFile = await makeKeyFile(t);
  const spiped = await startSpiped(t, { mode: 'decrypt', target: provider.port, keyPath: keyFile.path, flags: ['-j'] });
  const client = await startJumperSpipedClient(t, { key: keyFile.key, target: spiped.port, keepAlive: false });
  const requests = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 777));
  const answers = await Promise.all(requests.map((r) => requestAfterHalfClose(client.port, r)));
  t.deepEqual(answers, requests.map((r) => `sha256:${sha256(r)}`));
  const summaries = await client.closedCount(20);
  t.true(summaries.every((s) => s.reason === 'done'));
});
