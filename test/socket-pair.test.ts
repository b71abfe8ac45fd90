/**
 * Connected pairs (exec: and hand-off targets): each caller gets the two ends
 * of one connection, also after a connect failed.
 */
import test from 'ava';
import net from 'node:net';
import { connectedPair, type SocketPair } from '../src/activation/socket-pair.js';

function firstBytes(s: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
    s.resume();
  });
}

function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);
}

/** The two ends are one connection: bytes cross both ways between them. */
async function assertJoined(t: { is: (a: unknown, b: unknown) => void }, pair: SocketPair, label: string): Promise<void> {
  const toTheirs = firstBytes(pair.theirs);
  pair.ours.write(`to ${label}`);
  t.is(await within(2000, toTheirs, label), `to ${label}`);
  const toOurs = firstBytes(pair.ours);
  pair.theirs.write(`from ${label}`);
  t.is(await within(2000, toOurs, label), `from ${label}`);
}

// Serial: it patches net.connect, which a concurrent test would pick up.
test.serial('a failed connect does not hand later callers each other\'s sockets', async (t) => {
  const warm = await connectedPair(); // the rendezvous listener exists from here on
  await assertJoined(t, warm, 'warm');
  warm.ours.destroy();
  warm.theirs.destroy();

  const original = net.connect;
  (net as { connect: unknown }).connect = (...args: unknown[]) => {
    (net as { connect: unknown }).connect = original;
    void args;
    return original({ path: '/nonexistent-jumper-test/pair.sock' });
  };
  t.teardown(() => {
    (net as { connect: unknown }).connect = original;
  });
  await t.throwsAsync(connectedPair());

  const [a, b] = await within(3000, Promise.all([connectedPair(), connectedPair()]), 'two pairs after the failure');
  await assertJoined(t, a, 'a');
  await assertJoined(t, b, 'b');
  for (const p of [a, b]) {
    p.ours.destroy();
    p.theirs.destroy();
  }
});

test('twenty concurrent pairs are each one connection', async (t) => {
  const pairs = await within(5000, Promise.all(Array.from({ length: 20 }, () => connectedPair())), 'twenty pairs');
  await Promise.all(pairs.map((p, i) => assertJoined(t, p, `pair ${i}`)));
  for (const p of pairs) {
    p.ours.destroy();
    p.theirs.destroy();
  }
});
