/**
 * Backpressure: a provider that stops reading pauses the consumer. What the
 * consumer manages to write before stalling is bounded by the kernel socket
 * buffers along the chain plus the jumpers' own bound (<= 1 MiB per
 * direction each), the server jumper's memory does not grow with it, and
 * once the provider reads again every byte arrives, hash-equal.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createClient } from '../src/index.js';
import { makeKeyFile, spawnJumper } from './helpers/child-jumper.js';
import { randomBytes, startProvider } from './helpers/providers.js';

const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;
const STALL_MS = 1_500;
/** The jumper's own buffering bound per direction (the requirement). */
const JUMPER_BUFFER_BOUND = 1 * MiB;
/** TCP hops between consumer and provider: consumer-client, client-server, server-provider. */
const TCP_HOPS = 3;

/** Largest send + receive buffer one loopback TCP connection may autotune to. */
function maxBytesPerConnection(): number {
  const max = (file: string) => Number(readFileSync(file, 'utf8').trim().split(/\s+/)[2]);
  return max('/proc/sys/net/ipv4/tcp_wmem') + max('/proc/sys/net/ipv4/tcp_rmem');
}

test('a provider that does not read stalls the consumer within the buffer bound; nothing is lost', async (t) => {
  t.timeout(90_000);
  let providerSocket: net.Socket | undefined;
  const providerHash = createHash('sha256');
  let providerBytes = 0;
  const providerDone = new Promise<void>((resolve) => {
    void startProvider(t, (socket) => {
      providerSocket = socket;
      socket.pause(); // reads nothing until the test says so
      socket.on('data', (c: Buffer) => {
        providerHash.update(c);
        providerBytes += c.length;
      });
      socket.once('end', () => resolve());
    }).then((p) => startServer(p.address));
  });
  let startServer!: (provider: string) => void;
  const providerAddress = await new Promise<string>((resolve) => (startServer = resolve));
  const { path, key } = await makeKeyFile(t);
  const server = await spawnJumper(t, ['server', '--listen', '127.0.0.1:0', '--connect', providerAddress, '--key', path], {
    nodeArgs: ['--max-semi-space-size=1'],
  });
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));

  const consumer = net.connect({ port: client.port()!, host: '127.0.0.1', allowHalfOpen: true });
  consumer.on('data', () => {});
  await new Promise((r) => consumer.once('connect', r));
  const rssBefore = server.rss();
  const sentHash = createHash('sha256');
  let written = 0;
  const chunk = randomBytes(CHUNK);
  // Write until a drain does not come within STALL_MS: the chain is full.
  for (;;) {
    sentHash.update(chunk);
    written += chunk.length;
    if (consumer.write(chunk)) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        consumer.off('drain', onDrain);
        resolve(false);
      }, STALL_MS);
      const onDrain = () => {
        clearTimeout(timer);
        resolve(true);
      };
      consumer.once('drain', onDrain);
    });
    if (!drained) break;
    t.true(written < 1024 * MiB, 'the consumer stalls long before 1 GiB');
    if (written >= 1024 * MiB) return;
  }
  const accepted = written - consumer.writableLength;
  const bound = TCP_HOPS * maxBytesPerConnection() + 2 * JUMPER_BUFFER_BOUND;
  const rssGrowth = server.rss() - rssBefore;
  t.log(`consumer stalled after ${(accepted / MiB).toFixed(1)} MiB accepted (bound ${(bound / MiB).toFixed(0)} MiB); server jumper RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB`);
  t.true(accepted <= bound, 'what the consumer wrote fits in kernel buffers plus the jumpers\' bound');
  // The stalled bytes sit in kernel buffers, not in the jumper's heap.
  t.true(rssGrowth < 2 * JUMPER_BUFFER_BOUND + 8 * MiB, `server jumper RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB`);
  // Still stalled a moment later: the fast side stays paused.
  const before = consumer.writableLength;
  await new Promise((r) => setTimeout(r, 500));
  t.is(consumer.writableLength, before);

  providerSocket!.resume();
  consumer.end();
  await providerDone;
  t.is(providerBytes, written);
  t.is(providerHash.digest('hex'), sentHash.digest('hex'), 'every byte arrived once the provider read again');
  consumer.destroy();
});
