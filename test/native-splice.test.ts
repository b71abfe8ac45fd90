/**
 * `jumper forward` end to end over loopback, the path the native splice
 * forwarder (native/src/splice_pump.cc via src/native/splice.ts) takes
 * when available:
 *
 *   consumer --TCP--> [forward] --TCP/Unix--> provider
 *
 * Every test but the first asserts what the JS pipes do as well, so the
 * file also passes with JUMPER_NO_NATIVE_SPLICE=1 (the fallback).
 * Serial: the fd test counts /proc/self/fd.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { createForward, type ConnSummary, type ForwardJumper } from '../src/index.js';
import { nativeSpliceAvailable } from '../src/native/splice.js';
import { exchange, sha256, startEchoProvider, startProvider } from './helpers/providers.js';

const native = nativeSpliceAvailable();
console.log(`native-splice.test.ts: ${native ? 'native splice forwarder' : 'JS pipes (native splice unavailable or disabled)'}`);

const KIB = 1024;
const MIB = KIB * KIB;

interface Forward {
  jumper: ForwardJumper;
  port: number;
  closed: ConnSummary[];
  /** Resolves once `n` connections closed. */
  closedCount(n: number): Promise<ConnSummary[]>;
}

async function withForward(t: ExecutionContext, connect: string): Promise<Forward> {
  const jumper = createForward({ listen: '127.0.0.1:0', connect, maxConnections: 2000 });
  const closed: ConnSummary[] = [];
  const waiters: Array<() => void> = [];
  jumper.on('close', (s: ConnSummary) => {
    closed.push(s);
    for (const w of waiters.splice(0)) w();
  });
  await jumper.listen();
  t.teardown(() => jumper.close({ drainTimeoutMs: 0 }));
  const closedCount = async (n: number): Promise<ConnSummary[]> => {
    while (closed.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
    return closed;
  };
  return { jumper, port: jumper.port()!, closed, closedCount };
}

function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  return once(socket, 'connect').then(() => socket);
}

/** Write all of `data` honouring backpressure, then optionally end. */
async function send(socket: net.Socket, data: Buffer, end: boolean): Promise<void> {
  for (let off = 0; off < data.length; off += 256 * KIB) {
    if (!socket.write(data.subarray(off, off + 256 * KIB))) await once(socket, 'drain');
  }
  if (end) socket.end();
}

/** Hash everything `socket` receives until EOF; rejects on error. */
function receiveHash(socket: net.Socket): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    socket.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    socket.once('end', () => resolve({ hash: h.digest('hex'), bytes }));
    socket.once('error', reject);
  });
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

// ------------------------------------------------------------------ tests --

(native ? test.serial : test.serial.skip)('native: an open stream leaves no socket in JS (both fds are with the splice forwarder)', async (t) => {
  const provider = await startEchoProvider(t);
  const fwd = await withForward(t, provider.address);
  const tcpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  const before = tcpHandles();
  const consumer = await connect(fwd.port);
  consumer.write('ping');
  const [echo] = (await once(consumer, 'data')) as [Buffer];
  t.is(echo.toString(), 'ping');
  // consumer + provider's accepted socket; the forwarder's two are native.
  t.is(tcpHandles() - before, 2);
  consumer.end();
  const [summary] = await fwd.closedCount(1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, 4);
  t.is(summary!.bytesDown, 4);
});

test.serial('64 MiB each way arrive hash-equal; the summary counts both directions', async (t) => {
  const down = randomBytes(64 * MIB);
  const up = randomBytes(64 * MIB);
  let providerGot: Promise<{ hash: string; bytes: number }> | undefined;
  const provider = await startProvider(t, (socket) => {
    providerGot = receiveHash(socket);
    void send(socket, down, true);
  });
  const fwd = await withForward(t, provider.address);
  const consumer = await connect(fwd.port);
  const consumerGot = receiveHash(consumer);
  await send(consumer, up, true);
  const got = await consumerGot;
  t.is(got.bytes, down.length);
  t.is(got.hash, sha256(down));
  const atProvider = await providerGot!;
  t.is(atProvider.bytes, up.length);
  t.is(atProvider.hash, sha256(up));
  const [summary] = await fwd.closedCount(1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, up.length);
  t.is(summary!.bytesDown, down.length);
});

test.serial('a provider that stops reading: the consumer is pushed back, and every byte arrives in order once the provider reads again', async (t) => {
  // More than loopback's autotuned socket buffers and the pipe can hold.
  const up = randomBytes(96 * MIB);
  let providerSocket: net.Socket | undefined;
  const provider = await startProvider(t, (socket) => {
    providerSocket = socket;
    socket.pause();
  });
  const fwd = await withForward(t, provider.address);
  const consumer = await connect(fwd.port);
  let written = 0;
  // Write until the chain pushes back for good: the provider's socket
  // buffer, the forwarder's pipe and the consumer's socket buffers are full.
  for (;;) {
    while (written < up.length && consumer.write(up.subarray(written, written + 64 * KIB))) written += 64 * KIB;
    if (written >= up.length) break;
    written += 64 * KIB; // that last write was queued too
    const drained = once(consumer, 'drain').then(() => true);
    const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300));
    if (!(await Promise.race([drained, timedOut]))) break;
  }
  t.true(written < up.length, `the chain took all ${written} bytes without backpressure`);
  const stalledAt = written;
  const got = receiveHash(providerSocket!);
  providerSocket!.resume();
  if (consumer.writableNeedDrain) await once(consumer, 'drain');
  await send(consumer, up.subarray(written), true);
  const atProvider = await got;
  t.is(atProvider.bytes, up.length);
  t.is(atProvider.hash, sha256(up));
  const consumerEnded = once(consumer.resume(), 'end');
  providerSocket!.end();
  await consumerEnded;
  const [summary] = await fwd.closedCount(1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, up.length);
  t.log(`backpressure after ${(stalledAt / MIB).toFixed(1)} MiB of ${up.length / MIB}`);
});

test.serial('half-close up: the consumer ends, the provider reads to EOF and only then answers', async (t) => {
  const provider = await startProvider(t, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes`));
  });
  const fwd = await withForward(t, provider.address);
  const result = await exchange({ port: fwd.port }, Buffer.alloc(100_000, 7));
  t.is(result.ending, 'end');
  t.is(result.received.toString(), 'got 100000 bytes');
  t.is(provider.endings[0], 'end');
  t.is((await fwd.closedCount(1))[0]!.reason, 'done');
});

test.serial('half-close down: the provider speaks and ends first; the consumer keeps sending afterwards', async (t) => {
  const provider = await startProvider(t, (socket) => {
    socket.end('hello, then FIN');
  });
  const fwd = await withForward(t, provider.address);
  const consumer = await connect(fwd.port);
  const chunks: Buffer[] = [];
  consumer.on('data', (c: Buffer) => chunks.push(c));
  await once(consumer, 'end');
  t.is(Buffer.concat(chunks).toString(), 'hello, then FIN');
  // Our direction is still open: the provider gets this, then our EOF.
  const late = randomBytes(300 * KIB);
  await send(consumer, late, true);
  t.is(await provider.ended(0), 'end');
  t.is(sha256(provider.received[0]!), sha256(late));
  const [summary] = await fwd.closedCount(1);
  t.is(summary!.reason, 'done');
  t.is(summary!.bytesUp, late.length);
});

test.serial('provider reset: the consumer sees a reset, the summary says peer_reset', async (t) => {
  const provider = await startProvider(t, (socket) => {
    socket.once('data', () => socket.resetAndDestroy());
  });
  const fwd = await withForward(t, provider.address);
  const result = await exchange({ port: fwd.port }, Buffer.from('trigger'), { keepOpen: true });
  t.is(result.ending, 'reset');
  const [summary] = await fwd.closedCount(1);
  t.is(summary!.reason, 'peer_reset');
});

test.serial('consumer reset: the provider sees a reset', async (t) => {
  const provider = await startEchoProvider(t);
  const fwd = await withForward(t, provider.address);
  const consumer = await connect(fwd.port);
  consumer.on('error', () => {});
  consumer.write('x');
  await once(consumer, 'data');
  consumer.resetAndDestroy();
  t.is(await provider.ended(0), 'reset');
  t.is((await fwd.closedCount(1))[0]!.reason, 'peer_reset');
});

test.serial('close() cuts streams still open after the drain timeout: both peers see a reset', async (t) => {
  const provider = await startEchoProvider(t);
  const fwd = await withForward(t, provider.address);
  const consumer = await connect(fwd.port);
  const consumerEnding = new Promise<string>((resolve) => {
    consumer.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    consumer.once('end', () => resolve('end'));
  });
  consumer.write('x');
  await once(consumer, 'data');
  await fwd.jumper.close({ drainTimeoutMs: 50 });
  t.is(await consumerEnding, 'ECONNRESET');
  t.is(await provider.ended(0), 'reset');
  t.is((await fwd.closedCount(1))[0]!.reason, 'drain_timeout');
});

test.serial('500 concurrent streams, each echoed hash-equal', async (t) => {
  const provider = await startEchoProvider(t);
  const fwd = await withForward(t, provider.address);
  const streams = 500;
  const payloads = Array.from({ length: streams }, (_, i) => randomBytes(1 + ((i * 7919) % (64 * KIB))));
  const results = await Promise.all(payloads.map((p) => exchange({ port: fwd.port }, p)));
  for (let i = 0; i < streams; i++) {
    t.is(results[i]!.ending, 'end');
    t.is(sha256(results[i]!.received), sha256(payloads[i]!), `stream ${i}`);
  }
  const closed = await fwd.closedCount(streams);
  t.is(closed.filter((s) => s.reason === 'done').length, streams);
  t.is(closed.reduce((n, s) => n + s.bytesUp, 0), payloads.reduce((n, p) => n + p.length, 0));
});

test.serial('a Unix socket provider works the same (splice through AF_UNIX)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jumper-splice-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const provider = await startEchoProvider(t, { path: path.join(dir, 'echo.sock') });
  const fwd = await withForward(t, provider.address);
  const payload = randomBytes(3 * MIB);
  const result = await exchange({ port: fwd.port }, payload);
  t.is(result.ending, 'end');
  t.is(sha256(result.received), sha256(payload));
  t.is((await fwd.closedCount(1))[0]!.reason, 'done');
});

test.serial('no fd leaks: 100 streams that end, reset or get cut leave at most the pipe pool behind', async (t) => {
  const provider = await startProvider(t, (socket) => {
    socket.on('data', (c: Buffer) => {
      if (c.includes('reset')) socket.resetAndDestroy();
      else socket.write(c);
    });
    socket.once('end', () => socket.end());
    socket.on('error', () => {});
  });
  const fwd = await withForward(t, provider.address);
  const round = async (n: number): Promise<void> => {
    await Promise.all(
      Array.from({ length: n }, (_, i) => exchange({ port: fwd.port }, Buffer.from(i % 4 === 0 ? 'reset' : `data ${i}`), { keepOpen: i % 4 === 0 })),
    );
  };
  await round(20); // warm-up: lazy loads, reactor threads, pipe pool
  await waitFor(() => fwd.closed.length >= 20);
  const before = fdCount();
  for (let i = 0; i < 5; i++) await round(20);
  await fwd.closedCount(120);
  // The process-wide pipe pool keeps at most 16 pipes (32 fds).
  await waitFor(() => fdCount() <= before + 32);
  t.true(fdCount() <= before + 32, `fds: ${before} before, ${fdCount()} after`);
});
