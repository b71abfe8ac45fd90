/**
 * Log reasons by errno (reasonOf), the names both ends of a tunnel log and
 * carry in ABORT.
 */
import test from 'ava';
import net from 'node:net';
import { BadRecordError, reasonOf } from '../src/errors.js';

const sysError = (code: string) => Object.assign(new Error(code), { code });

test('errno reasons: a reset is peer_reset whether the call saw ECONNRESET or, after it, EPIPE', (t) => {
  t.is(reasonOf(sysError('ECONNRESET')), 'peer_reset');
  t.is(reasonOf(sysError('EPIPE')), 'peer_reset');
  t.is(reasonOf(sysError('ENOTCONN')), 'peer_reset');
  t.is(reasonOf(sysError('ECONNREFUSED')), 'connect_refused');
  t.is(reasonOf(sysError('ETIMEDOUT')), 'timeout');
  t.is(reasonOf(sysError('EHOSTUNREACH')), 'ehostunreach');
  t.is(reasonOf(new Error('no code')), 'error');
  t.is(reasonOf(new BadRecordError('x')), 'bad_record');
});

test('writing to a peer that reset: the error Node reports, whichever errno, is logged peer_reset', async (t) => {
  const server = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    socket.once('error', resolve);
    const chunk = Buffer.alloc(64 * 1024);
    let writes = 0;
    const pump = (): void => {
      // Bounded: a reset arrives within a few writes on loopback.
      if (socket.destroyed) return;
      if (writes++ > 2000) return resolve(undefined);
      socket.write(chunk, () => setImmediate(pump));
    };
    socket.once('connect', pump);
  });
  t.truthy(error, 'a write failed after the reset');
  t.true(error?.code === 'ECONNRESET' || error?.code === 'EPIPE', String(error?.code));
  t.is(reasonOf(error), 'peer_reset');
});
