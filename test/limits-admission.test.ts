/**
 * A server jumper's two admission stages: handshakes have their own budget
 * (maxHandshakes), and a stream takes one of maxConnections slots only once
 * it is authenticated; streams over the limit wait, unread, and are served
 * in order as slots free. A client bounds its dials and handshakes in
 * flight the same way (maxHandshakes), so a burst never floods the server.
 */
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { createClient, createServer } from '../src/index.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';
import { pollUntil } from './helpers/poll.js';

async function holdStream(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve) => {
    socket.once('data', () => resolve());
    socket.write('hold');
  });
  return socket;
}

test('server maxConnections 2: a third authenticated stream waits for a slot, then is served intact', async (t) => {
  const provider = await startEchoProvider(t);
  const key = await makeKey();
  const server = createServer({ listen: '127.0.0.1:0', connect: provider.address, key, maxConnections: 2, maxHandshakes: 8 });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const closes: string[] = [];
  server.on('close', (s) => closes.push(s.reason));
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const held = [await holdStream(client.port()!), await holdStream(client.port()!)];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const body = randomBytes(100_000);
  const third = exchange({ port: client.port()! }, body);
  // The third stream authenticated and now waits: no provider connection, counted as waiting.
  await pollUntil(() => server.stats().waiting !== 0, 2000, 20);
  t.is(server.stats().waiting, 1);
  t.is(provider.connections, 2);
  held[0]!.end();
  const result = await third;
  t.is(sha256(result.received), sha256(body));
  t.is(provider.connections, 3);
  // The ended holder and the third stream, once the server has recorded both.
  await pollUntil(() => closes.length >= 2, 5000);
  t.deepEqual(closes, ['done', 'done']);
  t.is(server.stats().failed, 0);
});

test('server: handshakes beyond maxHandshakes wait unread; an authenticated stream frees its handshake slot', async (t) => {
  const provider = await startEchoProvider(t);
  const key = await makeKey();
  const server = createServer({ listen: '127.0.0.1:0', connect: provider.address, key, maxConnections: 10, maxHandshakes: 1 });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  // A raw connection that never sends a byte holds the only handshake slot.
  const staller = net.connect({ port: server.port()!, host: '127.0.0.1' });
  t.teardown(() => staller.destroy());
  await new Promise((r) => staller.once('connect', r));
  // No ready wire (auto) may take the server's only handshake slot: this test is about streams waiting for it.
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key, handshakeTimeoutMs: 20_000, preconnect: 0 });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const body = randomBytes(10_000);
  const pending = exchange({ port: client.port()! }, body);
  await pollUntil(() => server.stats().waiting !== 0, 2000, 20);
  t.is(server.stats().waiting, 1, 'the real client waits behind the staller');
  staller.destroy();
  const result = await pending;
  t.is(sha256(result.received), sha256(body));
  // Two authenticated streams at once fit: each left the handshake stage.
  const [a, b] = await Promise.all([exchange({ port: client.port()! }, body), exchange({ port: client.port()! }, body)]);
  t.is(sha256(a!.received), sha256(body));
  t.is(sha256(b!.received), sha256(body));
});

/**
 * Between client and server: each connection is held HOLD_MS before it is
 * carried on, like a server whose accept queue is full. Records how many
 * were held at once.
 */
async function holdingRelay(t: ExecutionContext, serverPort: number, holdMs: number) {
  const state = { accepted: 0, held: 0, maxHeld: 0 };
  const relay = net.createServer({ allowHalfOpen: true }, (inbound) => {
    state.accepted++;
    state.held++;
    state.maxHeld = Math.max(state.maxHeld, state.held);
    inbound.pause();
    inbound.on('error', () => undefined);
    setTimeout(() => {
      state.held--;
      const outbound = net.connect({ port: serverPort, host: '127.0.0.1', allowHalfOpen: true });
      outbound.on('error', () => inbound.destroy());
      inbound.on('close', () => outbound.destroy());
      inbound.pipe(outbound).pipe(inbound);
    }, holdMs);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => relay.close(() => resolve())));
  return { port: (relay.address() as net.AddressInfo).port, state };
}

const clientHandshakeLimit = test.macro(async (t, protocol: 'jumper' | 'spiped') => {
  const provider = await startEchoProvider(t);
  const key = await makeKey();
  const server = createServer({ listen: '127.0.0.1:0', connect: provider.address, key, protocol });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const relay = await holdingRelay(t, server.port()!, 2000);
  // Each wave is held 2000 ms of a 3000 ms handshake timeout (1 s to spare on a loaded machine);
  // the third wave's streams wait 4000 ms before they dial, more than the timeout.
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${relay.port}`, key, protocol, preconnect: 0, maxHandshakes: 2, handshakeTimeoutMs: 3000 });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const failures: string[] = [];
  client.on('close', (s) => s.reason !== 'done' && failures.push(s.reason));

  const bodies = Array.from({ length: 6 }, () => randomBytes(50_000));
  const results = Promise.all(bodies.map((body) => exchange({ port: client.port()! }, body)));
  await pollUntil(() => client.handshakeStats().waiting >= 4, 2000);
  t.deepEqual(client.handshakeStats(), { inFlight: 2, waiting: 4 });
  t.is(relay.state.accepted, 2, 'only two wires dialled while their handshakes are held');

  const received = await results;
  t.deepEqual(received.map((r) => sha256(r.received)), bodies.map(sha256));
  t.is(relay.state.accepted, 6);
  t.is(relay.state.maxHeld, 2, 'never more than maxHandshakes wires dialled and not yet answered');
  t.deepEqual(failures, [], 'the streams that waited 4000 ms for a slot did not run into the 3000 ms handshake timeout');
  t.deepEqual(client.handshakeStats(), { inFlight: 0, waiting: 0 });
});

test('client maxHandshakes 2: two wires are dialled at once, the other streams wait (untimed) and are served in turn', clientHandshakeLimit, 'jumper');
test('client maxHandshakes 2 with the spiped protocol: the same', clientHandshakeLimit, 'spiped');

test('maxHandshakes and maxConnections must be whole numbers of at least 1, on a client and on a server', async (t) => {
  const key = await makeKey();
  const common = { listen: '127.0.0.1:0', connect: '127.0.0.1:1', key };
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    for (const limit of ['maxHandshakes', 'maxConnections'] as const) {
      const message = new RegExp(`^${limit} must be a whole number of at least 1`);
      t.throws(() => createClient({ ...common, [limit]: bad }), { code: 'JUMPER_ERR_INVALID_ARG', message }, `client ${limit} ${bad}`);
      t.throws(() => createServer({ ...common, [limit]: bad }), { code: 'JUMPER_ERR_INVALID_ARG', message }, `server ${limit} ${bad}`);
    }
  }
});
