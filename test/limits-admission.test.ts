/**
 * A server jumper's two admission stages: handshakes have their own budget
 * (maxHandshakes), and a stream takes one of maxConnections slots only once
 * it is authenticated; streams over the limit wait, unread, and are served
 * in order as slots free.
 */
import test from 'ava';
import net from 'node:net';
import { createClient, createServer } from '../src/index.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';

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
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const held = [await holdStream(client.port()!), await holdStream(client.port()!)];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const body = randomBytes(100_000);
  const third = exchange({ port: client.port()! }, body);
  // The third stream authenticated and now waits: no provider connection, counted as waiting.
  for (let i = 0; i < 100 && server.stats().waiting === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(server.stats().waiting, 1);
  t.is(provider.connections, 2);
  held[0]!.end();
  const result = await third;
  t.is(sha256(result.received), sha256(body));
  t.is(provider.connections, 3);
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
  for (let i = 0; i < 100 && server.stats().waiting === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(server.stats().waiting, 1, 'the real client waits behind the staller');
  staller.destroy();
  const result = await pending;
  t.is(sha256(result.received), sha256(body));
  // Two authenticated streams at once fit: each left the handshake stage.
  const [a, b] = await Promise.all([exchange({ port: client.port()! }, body), exchange({ port: client.port()! }, body)]);
  t.is(sha256(a!.received), sha256(body));
  t.is(sha256(b!.received), sha256(body));
});
