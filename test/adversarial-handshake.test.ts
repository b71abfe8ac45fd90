/**
 * Hostile input before a stream is authenticated: every case closes only
 * that connection, logs one line with a reason, never contacts the
 * provider, and the server serves a good client right after.
 * (tunnel.test.ts has the basic wrong-key, garbage and replayed-hello cases.)
 */
import test from 'ava';
import net from 'node:net';
import { createClient } from '../src/index.js';
import { CLIENT_HELLO_BYTES, HEADER_BYTES, MAGIC, startClientHandshake } from '../src/proto/handshake.js';
import { MIN_CIPHERTEXT } from '../src/proto/record.js';
import { assertRejected, assertStillServes, openRawSession, sendRaw, startGuardedServer } from './helpers/guarded-server.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { startRecordRelay } from './helpers/record-relay.js';
import { makeKey } from './helpers/tunnel.js';

for (const size of [1, 3, 4, 52, 4096, 1024 * 1024]) {
  test(`${size} random bytes then EOF: closed before any crypto, provider untouched`, async (t) => {
    const g = await startGuardedServer(t);
    // Avoid the 1-in-16M chance of a random prefix being the real magic.
    const junk = randomBytes(size);
    if (junk.subarray(0, 3).equals(MAGIC)) junk[0] = 0;
    const result = await sendRaw(g.port, junk);
    t.is(result.received.length, 0);
    // Under 4 bytes the header cannot be judged: the EOF is what ends it.
    await assertRejected(t, g, size < HEADER_BYTES ? 'handshake_truncated' : 'bad_magic');
    await assertStillServes(t, g);
  });
}

test('a truncated client hello (header + 20 bytes, then EOF) is handshake_truncated', async (t) => {
  const g = await startGuardedServer(t);
  const hello = startClientHandshake(g.key).hello;
  const result = await sendRaw(g.port, hello.subarray(0, HEADER_BYTES + 20));
  t.is(result.received.length, 0, 'no server hello for half a client hello');
  await assertRejected(t, g, 'handshake_truncated');
  await assertStillServes(t, g);
});

test('a truncated client hello that then stalls is cut at the handshake timeout', async (t) => {
  const g = await startGuardedServer(t, { handshakeTimeoutMs: 3000 });
  const hello = startClientHandshake(g.key).hello;
  const result = await sendRaw(g.port, hello.subarray(0, CLIENT_HELLO_BYTES - 1), { keepOpen: true });
  t.is(result.ending, 'reset');
  await assertRejected(t, g, 'handshake_timeout');
  await assertStillServes(t, g);
});

test('a valid hello under the wrong key is bad_key: no server hello, no provider', async (t) => {
  const g = await startGuardedServer(t);
  const result = await sendRaw(g.port, startClientHandshake(await makeKey()).hello);
  t.is(result.received.length, 0);
  await assertRejected(t, g, 'bad_key');
  await assertStillServes(t, g);
});

for (const [what, offset] of [
  ['the ephemeral key', HEADER_BYTES + 5],
  ['the tag', CLIENT_HELLO_BYTES - 1],
] as const) {
  test(`the right key but one flipped bit in ${what} of the hello is bad_key`, async (t) => {
    const g = await startGuardedServer(t);
    const hello = Buffer.from(startClientHandshake(g.key).hello);
    hello[offset]! ^= 0x40;
    const result = await sendRaw(g.port, hello);
    t.is(result.received.length, 0);
    await assertRejected(t, g, 'bad_key');
    await assertStillServes(t, g);
  });
}

test('a flipped bit in the version byte is bad_version, not an authentication failure', async (t) => {
  const g = await startGuardedServer(t);
  const hello = Buffer.from(startClientHandshake(g.key).hello);
  hello[MAGIC.length]! ^= 0x02;
  await sendRaw(g.port, hello);
  await assertRejected(t, g, 'bad_version');
  await assertStillServes(t, g);
});

test('a complete hello with no liveness record, then EOF: handshake_truncated, provider never dialled', async (t) => {
  const g = await startGuardedServer(t);
  const session = await openRawSession(g.port, g.key, { liveness: false });
  session.socket.end();
  await session.ended;
  await assertRejected(t, g, 'handshake_truncated');
  await assertStillServes(t, g);
});

test('a forged liveness record (right size, random bytes) is tampered, provider never dialled', async (t) => {
  const g = await startGuardedServer(t);
  const session = await openRawSession(g.port, g.key, { liveness: false });
  const forged = Buffer.concat([Buffer.of(0, MIN_CIPHERTEXT), randomBytes(MIN_CIPHERTEXT)]);
  session.socket.write(forged);
  t.is(await session.ended, 'reset');
  await assertRejected(t, g, 'tampered');
  await assertStillServes(t, g);
});

test('a length field below the minimum record size is bad_record', async (t) => {
  const g = await startGuardedServer(t);
  const session = await openRawSession(g.port, g.key, { liveness: false });
  session.socket.write(Buffer.concat([Buffer.of(0, MIN_CIPHERTEXT - 1), randomBytes(MIN_CIPHERTEXT - 1)]));
  await session.ended;
  await assertRejected(t, g, 'bad_record');
  await assertStillServes(t, g);
});

test('an over-long length field (65535, few bytes follow) before liveness waits at most the handshake timeout', async (t) => {
  const g = await startGuardedServer(t, { handshakeTimeoutMs: 3000 });
  const session = await openRawSession(g.port, g.key, { liveness: false });
  session.socket.write(Buffer.concat([Buffer.of(0xff, 0xff), randomBytes(100)]));
  await session.ended;
  await assertRejected(t, g, 'handshake_timeout');
  await assertStillServes(t, g);
});

test('an over-long length field after liveness, then EOF: truncated, the provider gets no byte and a reset', async (t) => {
  const g = await startGuardedServer(t);
  const session = await openRawSession(g.port, g.key);
  session.socket.end(Buffer.concat([Buffer.of(0xff, 0xff), randomBytes(1000)]));
  // The wire side may see a reset (JS pipes) or a close (native pump), never an END record.
  t.regex(await session.ended, /^(reset|end|close)$/);
  const ends: string[] = [];
  t.notThrows(() => session.opener.push(Buffer.concat(session.received), { onData: () => {}, onEnd: () => ends.push('end'), onAbort: (r) => ends.push(r) }));
  t.false(ends.includes('end'));
  // The liveness record made it a real stream: one provider connection, zero bytes, reset.
  await assertRejected(t, g, 'truncated', { providerConnections: 1 });
  t.is(Buffer.concat(g.provider.received[0] ?? []).length, 0);
  t.is(await g.provider.ended(0), 'reset');
  await assertStillServes(t, g);
});

test('a replayed whole session (recorded by a relay) reaches no provider, once or three times at once', async (t) => {
  const g = await startGuardedServer(t);
  const relay = await startRecordRelay(t, g.port);
  const client = createClient({ listen: '127.0.0.1:0', connect: relay.address, key: g.key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const body = randomBytes(300_000);
  const genuine = await exchange({ port: client.port()! }, body);
  t.is(sha256(genuine.received), sha256(body));
  await g.closedOn(1);
  t.is(g.provider.connections, 1);
  const session = Buffer.concat(relay.connections[0]!.seen.up);
  t.true(relay.connections[0]!.bodySizes.up.length >= 6, 'liveness, several data records and END were captured');
  const replays = await Promise.all([1, 2, 3].map(() => sendRaw(g.port, session)));
  const closed = await g.closedOn(4);
  t.deepEqual(closed.slice(1).map((s) => s.reason), ['tampered', 'tampered', 'tampered']);
  t.is(g.logger.failures().length, 3);
  for (const r of replays) t.is(r.received.length, 48, 'only a server hello came back');
  t.is(g.provider.connections, 1, 'the provider never saw the replays');
  t.is(g.provider.received.length, 1);
  await assertStillServes(t, g);
});

test('a server replaying a captured server session to a client: the client refuses it, the consumer gets nothing', async (t) => {
  const g = await startGuardedServer(t);
  // Capture a genuine server->client session.
  const relay = await startRecordRelay(t, g.port);
  const honest = createClient({ listen: '127.0.0.1:0', connect: relay.address, key: g.key });
  await honest.listen();
  t.teardown(() => honest.close({ drainTimeoutMs: 0 }));
  await exchange({ port: honest.port()! }, randomBytes(50_000));
  const captured = Buffer.concat(relay.connections[0]!.seen.down);
  t.true(captured.length > 50_000);
  // A fake server that plays it back to whoever connects.
  const fake = net.createServer((s) => {
    s.on('error', () => {});
    s.on('data', () => {});
    s.write(captured);
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => fake.close(() => resolve())));
  const { captureLogger } = await import('./helpers/capture-logger.js');
  const logger = captureLogger();
  const victim = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${(fake.address() as net.AddressInfo).port}`, key: g.key, logger });
  await victim.listen();
  t.teardown(() => victim.close({ drainTimeoutMs: 0 }));
  const closed = new Promise<import('../src/index.js').ConnSummary>((resolve) => victim.once('close', resolve));
  const result = await exchange({ port: victim.port()! }, Buffer.from('request'));
  t.is(result.received.length, 0, 'not one replayed byte reached the consumer');
  t.is(result.ending, 'reset');
  t.is((await closed).reason, 'bad_key');
  t.is(logger.failures().length, 1);
});

test('header bytes dribbled one at a time are judged at byte 4 (bad magic never waits for 52 bytes)', async (t) => {
  const g = await startGuardedServer(t);
  const socket = net.connect({ port: g.port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  for (const b of Buffer.from('JMPX')) {
    socket.write(Buffer.of(b));
    await new Promise((r) => setTimeout(r, 20));
  }
  // No EOF and no timeout: the fourth byte alone decides.
  await assertRejected(t, g, 'bad_version');
  socket.destroy();
  await assertStillServes(t, g);
});

for (const ending of ['FIN', 'RST'] as const) {
  test(`a connection closed with ${ending} before any byte (a TCP health check) ends as no_data: no failure, no warning, provider untouched`, async (t) => {
    const g = await startGuardedServer(t);
    const socket = net.connect(g.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    if (ending === 'FIN') socket.end();
    else socket.resetAndDestroy();
    const [summary] = await g.closedOn(1);
    t.is(summary!.reason, 'no_data');
    t.is(g.logger.failures().length, 0, 'no warning line');
    t.is(g.server.stats().failed, 0);
    t.deepEqual(g.server.stats().failures, {});
    t.is(g.provider.connections, 0);
    await assertStillServes(t, g);
  });
}
