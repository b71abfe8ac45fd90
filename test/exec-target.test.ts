/**
 * --connect exec:COMMAND: each stream is a fresh command's stdin/stdout.
 */
import test from 'ava';
import { createForward } from '../src/index.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { withTunnel } from './helpers/tunnel.js';

test('exec:cat behind a forwarder echoes 1 MiB hash-equal, one process per stream', async (t) => {
  const fwd = createForward({ listen: '127.0.0.1:0', connect: 'exec:cat' });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const bodies = [randomBytes(1024 * 1024), randomBytes(5000), randomBytes(1)];
  const results = await Promise.all(bodies.map((b) => exchange({ port: fwd.port()! }, b)));
  results.forEach((r, i) => t.is(sha256(r.received), sha256(bodies[i]!)));
  t.is(fwd.stats().total, 3);
});

test('exec: behind a server jumper: the command sees the decrypted stream', async (t) => {
  const tunnel = await withTunnel(t, { provider: 'exec:sha256sum' });
  const body = randomBytes(2 * 1024 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(result.received.toString().split(' ')[0], sha256(body));
  const [closed] = await tunnel.closedOn('server', 1);
  t.is(closed!.reason, 'done');
});

test('a command that exits early closes the stream cleanly', async (t) => {
  const fwd = createForward({ listen: '127.0.0.1:0', connect: 'exec:head -c 10' });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const result = await exchange({ port: fwd.port()! }, Buffer.from('0123456789abcdef'), { keepOpen: true });
  t.is(result.received.toString(), '0123456789');
  t.is(result.ending, 'end');
});

test('exec: without a command is refused', (t) => {
  t.throws(() => createForward({ listen: '127.0.0.1:0', connect: 'exec:' }), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
});
