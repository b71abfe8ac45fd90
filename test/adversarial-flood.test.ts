/**
 * 10,000 hostile connections in a row (50 at a time) against one server
 * jumper running as a child process: every one is refused with its reason,
 * good streams are served in between, and afterwards the process's open
 * descriptors are back to the baseline and its RSS has not grown materially.
 */
import test from 'ava';
import net from 'node:net';
import { createClient } from '../src/index.js';
import { startClientHandshake } from '../src/proto/handshake.js';
import { makeKeyFile, spawnJumper } from './helpers/child-jumper.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { startRecordRelay } from './helpers/record-relay.js';
import { startStrictEchoProvider } from './helpers/tcp-ending.js';
import { makeKey } from './helpers/tunnel.js';

const WARMUP = 1_000;
const FLOOD = 10_000;
const CONCURRENCY = 50;
const GOOD_EVERY = 500;
const MiB = 1024 * 1024;
/** Generous: V8 heap growth and allocator slack, not a leak per connection (10k x 3 kB would be 30 MiB). */
const RSS_GROWTH_BOUND = 30 * MiB;

/** Send one hostile payload, then close; resolves when the server is done with it. */
function hostile(port: number, payload: Buffer | 'reset'): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect', () => {
      if (payload === 'reset') socket.resetAndDestroy();
      else socket.end(payload);
    });
  });
}

async function pool(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await job(next++);
    }),
  );
}

test('10,000 bad connections: each refused with a reason, good ones served, no fd or memory growth', async (t) => {
  t.timeout(180_000);
  const provider = await startStrictEchoProvider(t);
  const { path, key } = await makeKeyFile(t);
  const server = await spawnJumper(t, ['server', '--listen', '127.0.0.1:0', '--connect', provider.address, '--key', path, '--handshake-timeout', '10s'], {
    // A small young generation, so RSS tracks live memory rather than V8's lazily grown semi-spaces.
    nodeArgs: ['--max-semi-space-size=1'],
  });
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));

  // A genuine session, recorded for replay.
  const relay = await startRecordRelay(t, server.port);
  const recorder = createClient({ listen: '127.0.0.1:0', connect: relay.address, key });
  await recorder.listen();
  t.teardown(() => recorder.close({ drainTimeoutMs: 0 }));
  await exchange({ port: recorder.port()! }, randomBytes(20_000));
  const captured = Buffer.concat(relay.connections[0]!.seen.up);
  let goodSent = 1;

  const wrongKey = await makeKey();
  const kinds: { reason: string; payload: () => Buffer | 'reset' }[] = [
    { reason: 'bad_magic', payload: () => randomBytes(64) },
    { reason: 'handshake_truncated', payload: () => startClientHandshake(key).hello.subarray(0, 30) },
    { reason: 'bad_key', payload: () => startClientHandshake(wrongKey).hello },
    { reason: 'tampered', payload: () => captured },
    // A reset before any byte is what a TCP health check may send: ended as no_data, not a failure.
    { reason: 'no_data', payload: () => 'reset' },
  ];
  const expected: Record<string, number> = {};
  const goodResults: boolean[] = [];
  const good = async () => {
    const body = randomBytes(30_000);
    const result = await exchange({ port: client.port()! }, body);
    goodSent++;
    goodResults.push(sha256(result.received) === sha256(body));
  };
  const run = async (count: number) => {
    await pool(count, CONCURRENCY, async (i) => {
      const kind = kinds[i % kinds.length]!;
      expected[kind.reason] = (expected[kind.reason] ?? 0) + 1;
      await hostile(server.port, kind.payload());
      if (i % GOOD_EVERY === 0) await good();
    });
  };
  const hostileLine = (l: { msg?: unknown; reason?: unknown }) => l.msg === 'connection failed' || (l.msg === 'connection closed' && l.reason === 'no_data');
  const failedLines = () => server.logs.filter(hostileLine).length;
  const settle = async (failures: number) => {
    await server.waitFor(() => failedLines() >= failures, 60_000);
    // Let closing sockets and timers drain before sampling.
    await new Promise((r) => setTimeout(r, 500));
  };

  await run(WARMUP);
  await settle(WARMUP);
  const baseline = { rss: server.rss(), fds: server.fds() };

  await run(FLOOD);
  await settle(WARMUP + FLOOD);
  await good();

  // Every hostile connection logged exactly one line with the reason of its kind
  // (a failure line, except no_data: a clean "connection closed" at info).
  const counts: Record<string, number> = {};
  for (const l of server.logs) if (hostileLine(l)) counts[String(l.reason)] = (counts[String(l.reason)] ?? 0) + 1;
  t.deepEqual(counts, expected);
  t.true(server.logs.every((l) => l.reason !== 'no_data' || l.level === 30), 'no_data is logged at info');
  t.true(goodResults.length >= FLOOD / GOOD_EVERY && goodResults.every(Boolean), 'good streams served hash-equal during the flood');
  t.is(provider.connections, goodSent, 'the provider saw only the good streams');

  let fds = server.fds();
  for (let i = 0; i < 20 && fds > baseline.fds; i++) {
    await new Promise((r) => setTimeout(r, 250));
    fds = server.fds();
  }
  const rss = server.rss();
  t.log(`baseline rss ${(baseline.rss / MiB).toFixed(1)} MiB, fds ${baseline.fds}; after ${FLOOD}: rss ${(rss / MiB).toFixed(1)} MiB, fds ${fds}`);
  t.true(fds <= baseline.fds, `fds back to baseline (${fds} vs ${baseline.fds})`);
  t.true(rss - baseline.rss < RSS_GROWTH_BOUND, `rss grew ${((rss - baseline.rss) / MiB).toFixed(1)} MiB`);
  t.is(server.child.exitCode, null, 'the server is still running');
});
