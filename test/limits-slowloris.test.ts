/**
 * Slowloris: 2,000 connections that send 10 bytes of a hello and stall do
 * not stop a legitimate client while they are open, and each is cut at the
 * handshake timeout with its own log line.
 */
import test from 'ava';
import net from 'node:net';
import { createClient } from '../src/index.js';
import { startClientHandshake } from '../src/proto/handshake.js';
import { makeKeyFile, spawnJumper } from './helpers/child-jumper.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { startStrictEchoProvider } from './helpers/tcp-ending.js';
import { pollUntil } from './helpers/poll.js';

const STALLERS = 2_000;
const STALL_BYTES = 10;

test('2,000 stalled handshakes: a good client is served meanwhile; all are cut at the handshake timeout', async (t) => {
  t.timeout(120_000);
  const provider = await startStrictEchoProvider(t);
  const { path, key } = await makeKeyFile(t);
  // Default limits: handshakes in progress have their own budget (--max-handshakes,
  // 4096), so 2,000 stallers take none of the 1,000 --max-connections stream slots.
  const server = await spawnJumper(t, [
    'server', '--listen', '127.0.0.1:0', '--connect', provider.address, '--key', path,
    // Long enough that accepting 2,000 stallers and serving the good client fit inside it on a
    // loaded machine; what is tested does not depend on the value.
    '--handshake-timeout', '10s',
  ]);
  const baselineFds = server.fds();
  const prefix = startClientHandshake(key).hello.subarray(0, STALL_BYTES);
  let stallersClosed = 0;
  const stallers: net.Socket[] = [];
  t.teardown(() => stallers.forEach((s) => s.destroy()));
  await Promise.all(
    Array.from({ length: STALLERS }, () =>
      new Promise<void>((resolve) => {
        const s = net.connect({ port: server.port, host: '127.0.0.1' });
        stallers.push(s);
        s.on('error', () => {});
        s.once('close', () => stallersClosed++);
        s.once('connect', () => s.write(prefix, () => resolve()));
      }),
    ),
  );
  // Wait until the server holds them all (one fd each).
  await pollUntil(() => server.fds() >= baselineFds + STALLERS, 10_000, 20);
  t.true(server.fds() >= baselineFds + STALLERS, 'the server accepted every staller');

  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const body = randomBytes(200_000);
  const result = await exchange({ port: client.port()! }, body);
  const openWhenServed = STALLERS - stallersClosed;
  t.is(sha256(result.received), sha256(body));
  t.is(openWhenServed, STALLERS, 'the good client was served while every staller was still open');

  await server.waitFor(() => server.logs.filter((l) => l.reason === 'handshake_timeout').length >= STALLERS, 60_000);
  t.is(server.logs.filter((l) => l.msg === 'connection failed').length, STALLERS);
  t.is(provider.connections, 1, 'no staller reached the provider');
  await pollUntil(() => stallersClosed >= STALLERS, 10_000, 50);
  t.is(stallersClosed, STALLERS, 'every staller was closed by the server');
});
