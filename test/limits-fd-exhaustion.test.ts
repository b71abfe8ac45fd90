/**
 * Descriptor exhaustion: a server jumper under `ulimit -n 64` is flooded
 * with held connections until accept() fails with EMFILE. It logs the
 * error, keeps running, and serves again once the held connections close.
 */
import test from 'ava';
import net from 'node:net';
import { createClient } from '../src/index.js';
import { makeKeyFile, spawnJumper } from './helpers/child-jumper.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { startStrictEchoProvider } from './helpers/tcp-ending.js';
import { pollUntil } from './helpers/poll.js';

const NOFILE = 64;
const HELD = 80;

test('EMFILE under ulimit -n 64: logged, the process survives, and serves again after', async (t) => {
  t.timeout(60_000);
  const provider = await startStrictEchoProvider(t);
  const { path, key } = await makeKeyFile(t);
  const server = await spawnJumper(
    t,
    ['server', '--listen', '127.0.0.1:0', '--connect', provider.address, '--key', path, '--handshake-timeout', '60s'],
    { nofile: NOFILE },
  );
  const baselineFds = server.fds();
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  await Promise.all(
    Array.from({ length: HELD }, () =>
      new Promise<void>((resolve) => {
        const s = net.connect({ port: server.port, host: '127.0.0.1' });
        held.push(s);
        s.on('error', () => resolve());
        s.once('close', () => resolve());
        s.once('connect', () => resolve());
      }),
    ),
  );
  const line = await server.waitFor((l) => l.code === 'EMFILE', 15_000);
  t.regex(String(line.msg), /accept failed/);
  const fds = server.fds();
  t.log(`${fds} descriptors open at the limit`);
  // +1: a pipe inherited from the test runner, numbered above the limit, is listed too.
  t.true(fds <= NOFILE + 1, `${fds} descriptors`);

  // Let the kernel backlog and libuv's shedding settle, then free everything.
  await new Promise((r) => setTimeout(r, 300));
  t.is(server.child.exitCode, null, 'still running under EMFILE');
  for (const s of held) s.destroy();
  // They sent nothing: each ends as no_data (a clean "connection closed").
  await server.waitFor(() => server.logs.some((l) => l.reason === 'no_data'), 10_000);
  // Until the server has closed them all: a connection queued while its table is still full is dropped.
  await pollUntil(() => server.fds() <= baselineFds + 2, 10_000);
  t.true(server.fds() <= baselineFds + 2, `${server.fds()} descriptors open after the held connections closed (${baselineFds} before)`);

  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const body = randomBytes(100_000);
  const result = await exchange({ port: client.port()! }, body);
  t.is(sha256(result.received), sha256(body), 'served again once descriptors were free');
  t.is(server.child.exitCode, null);
});
