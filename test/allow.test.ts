/**
 * --allow CIDR: peers outside the list are reset at accept, logged and
 * counted as not_allowed, and never reach a dial.
 */
import test from 'ava';
import net from 'node:net';
import { createForward, createServer, type ConnSummary } from '../src/index.js';
import { createAllowList } from '../src/addr/allow.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';
import { pollUntil } from './helpers/poll.js';

/** Connect from `localAddress`, send, and report how it ended. */
function tryFrom(port: number, localAddress: string, data: Buffer): Promise<{ ending: string; received: Buffer }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('connect', () => socket.end(data));
    socket.once('end', () => {
      socket.end();
      resolve({ ending: 'end', received: Buffer.concat(chunks) });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ ending: err.code ?? 'error', received: Buffer.concat(chunks) }));
  });
}

test('a forwarder serves allowed peers and resets the others before dialling', async (t) => {
  const provider = await startEchoProvider(t);
  const forward = createForward({ listen: '127.0.0.1:0', connect: provider.address, allow: ['127.0.0.2/32', '10.0.0.0/8'] });
  await forward.listen();
  t.teardown(() => forward.close({ drainTimeoutMs: 0 }));
  const closed: ConnSummary[] = [];
  forward.on('close', (s) => closed.push(s));
  const dials: unknown[] = [];
  forward.on('dial', (d) => dials.push(d));

  const data = randomBytes(100_000);
  const ok = await tryFrom(forward.port()!, '127.0.0.2', data);
  t.is(ok.ending, 'end');
  t.is(sha256(ok.received), sha256(data));

  const denied = await tryFrom(forward.port()!, '127.0.0.3', data);
  t.is(denied.ending, 'ECONNRESET');
  t.is(denied.received.length, 0);
  t.is(provider.connections, 1, 'the refused peer never reached the provider');
  t.is(dials.length, 1, 'nothing was dialled for it');
  // The allowed stream's close can be recorded after the consumer saw its end, so wait for both.
  await pollUntil(() => closed.length >= 2, 5000);
  const refused = closed.find((s) => s.reason !== 'done');
  t.is(refused?.reason, 'not_allowed');
  t.is(refused?.peer.split(':')[0], '127.0.0.3');
  const stats = forward.stats();
  t.is(stats.total, 2);
  t.deepEqual(stats.failures, { not_allowed: 1 });
});

test('a server jumper refuses a disallowed peer before the handshake', async (t) => {
  const server = createServer({ listen: '127.0.0.1:0', connect: '127.0.0.1:1', key: await makeKey(), allow: ['192.0.2.0/24'] });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const r = await exchange({ port: server.port()! }, Buffer.from('JMP\x01'));
  t.is(r.ending, 'reset');
  t.deepEqual(server.stats().failures, { not_allowed: 1 });
});

test('allow lists: IPv4-mapped peers match IPv4 entries; bad entries are refused', (t) => {
  const list = createAllowList(['127.0.0.0/8', '::1']);
  t.true(list.check('127.1.2.3', 'ipv4'));
  t.true(list.check('::1', 'ipv6'));
  t.false(list.check('10.1.1.1', 'ipv4'));
  for (const bad of ['10.0.0.0/33', 'example.com', '::1/129', '1.2.3.4/8/9', '']) {
    t.throws(() => createAllowList([bad]), { code: 'JUMPER_ERR_INVALID_ARG' }, bad);
  }
  t.throws(() => createForward({ listen: '127.0.0.1:0', connect: '127.0.0.1:1', allow: ['nope'] }), { code: 'JUMPER_ERR_INVALID_ARG' });
});
