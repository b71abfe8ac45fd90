/**
 * Soak: mixed load through a client -> balancer -> 2 servers chain for N
 * minutes, sampling RSS and open descriptors of this process over time.
 *
 *   npm run soak -- --minutes 30 [--concurrency 40] [--json]
 *
 * Load mix (each worker loops, picking by weight):
 *  - bulk:  8 MiB up, echoed back, hash-checked
 *  - rtt:   100 small request/response round trips on one stream
 *  - churn: connect, 1 kB, close
 *  - bad:   a hostile connection straight at the server (garbage, a
 *           truncated hello, or a wrong key); must be refused
 * Everything stays on loopback. Exit status 1 if any good stream failed or
 * a hostile one was served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { createBalancer, createClient, createServer, deriveKey, type ConnSummary } from '../src/index.js';
import { startClientHandshake } from '../src/proto/handshake.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const MINUTES = Number(arg('minutes', '5'));
const CONCURRENCY = Number(arg('concurrency', '40'));
const SAMPLE_MS = Number(arg('sample-seconds', '10')) * 1000;
const JSON_OUT = process.argv.includes('--json');
const MiB = 1024 * 1024;
const STREAM_TIMEOUT_MS = 60_000;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Echo provider on loopback. */
async function startEcho(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.on('data', (c: Buffer) => s.write(c));
    s.once('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

/** One stream: send `up`, half-close, collect until EOF. */
function roundTrip(port: number, up: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('stream timeout'));
    }, STREAM_TIMEOUT_MS);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      clearTimeout(timer);
      s.end();
      resolve(Buffer.concat(chunks));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('connect', () => s.end(up));
  });
}

/** Many small round trips on one stream: the RTT workload. */
function pingPong(port: number, rounds: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('rtt timeout'));
    }, STREAM_TIMEOUT_MS);
    let left = rounds;
    const msg = Buffer.from('ping-0123456789');
    s.on('data', (c: Buffer) => {
      if (!c.equals(msg)) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error('rtt mismatch (or split reply)'));
        return;
      }
      if (--left === 0) {
        clearTimeout(timer);
        s.destroy();
        resolve();
      } else s.write(msg);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('connect', () => s.write(msg));
  });
}

function hostile(port: number, payload: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.once('connect', () => s.end(payload));
  });
}

async function main(): Promise<void> {
  const key = await deriveKey(randomBytes(32));
  const wrongKey = await deriveKey(randomBytes(32));
  const echo = await startEcho();
  const provider = `127.0.0.1:${(echo.address() as net.AddressInfo).port}`;
  const servers = [0, 1].map(() => createServer({ listen: '127.0.0.1:0', connect: provider, key }));
  for (const s of servers) await s.listen();
  const server = servers[0]!;
  const serverPort = server.port()!;
  const balancer = createBalancer({ listen: '127.0.0.1:0', backends: servers.map((s) => `127.0.0.1:${s.port()}`) });
  await balancer.listen();
  const firstHop = `127.0.0.1:${balancer.port()}`;

  const client = createClient({ listen: '127.0.0.1:0', connect: firstHop, key });
  await client.listen();
  const port = client.port()!;

  const stats = { streams: 0, bytes: 0, failures: 0, hostile: 0, hostileServed: 0, byKind: {} as Record<string, number>, errors: {} as Record<string, number> };
  const serverReasons: Record<string, number> = {};
  for (const s of servers) s.on('close', (c: ConnSummary) => (serverReasons[c.reason] = (serverReasons[c.reason] ?? 0) + 1));
  const samples: { t: number; rssMiB: number; fds: number; streams: number; failures: number }[] = [];
  const started = Date.now();
  const deadline = started + MINUTES * 60_000;
  const sample = () => {
    const s = {
      t: Math.round((Date.now() - started) / 1000),
      rssMiB: Math.round((process.memoryUsage().rss / MiB) * 10) / 10,
      fds: readdirSync('/proc/self/fd').length,
      streams: stats.streams,
      failures: stats.failures,
    };
    samples.push(s);
    if (!JSON_OUT) console.log(`t=${s.t}s rss=${s.rssMiB} MiB fds=${s.fds} streams=${s.streams} bytes=${(stats.bytes / MiB).toFixed(0)} MiB failures=${s.failures} hostile=${stats.hostile}`);
  };
  const sampler = setInterval(sample, SAMPLE_MS);
  sample();

  const kinds: [string, number, () => Promise<void>][] = [
    ['bulk', 1, async () => {
      const body = randomBytes(8 * MiB);
      const back = await roundTrip(port, body);
      if (sha(back) !== sha(body)) throw new Error('bulk hash mismatch');
      stats.bytes += 2 * body.length;
    }],
    ['rtt', 3, () => pingPong(port, 100)],
    ['churn', 6, async () => {
      const body = randomBytes(1024);
      const back = await roundTrip(port, body);
      if (!back.equals(body)) throw new Error('churn mismatch');
      stats.bytes += 2 * body.length;
    }],
    ['bad', 2, async () => {
      const pick = Math.floor(Math.random() * 3);
      const payload = pick === 0 ? randomBytes(64) : pick === 1 ? startClientHandshake(key).hello.subarray(0, 20) : startClientHandshake(wrongKey).hello;
      await hostile(serverPort, payload);
      stats.hostile++;
    }],
  ];
  const totalWeight = kinds.reduce((n, k) => n + k[1], 0);
  const pick = () => {
    let r = Math.random() * totalWeight;
    for (const k of kinds) if ((r -= k[1]) < 0) return k;
    return kinds[0]!;
  };

  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        const [name, , run] = pick();
        try {
          await run();
          if (name !== 'bad') stats.streams++;
          stats.byKind[name] = (stats.byKind[name] ?? 0) + 1;
        } catch (err) {
          stats.failures++;
          const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
          stats.errors[`${name}:${code}`] = (stats.errors[`${name}:${code}`] ?? 0) + 1;
        }
      }
    }),
  );
  clearInterval(sampler);
  sample();
  await client.close({ drainTimeoutMs: 5000 });
  await balancer.close({ drainTimeoutMs: 5000 });
  for (const s of servers) await s.close({ drainTimeoutMs: 5000 });
  echo.close();
  // A hostile connection is "served" if the server logged it as done.
  const hostileReasons = ['bad_magic', 'handshake_truncated', 'bad_key'].reduce((n, r) => n + (serverReasons[r] ?? 0), 0);
  stats.hostileServed = stats.hostile - hostileReasons;
  const first = samples[1] ?? samples[0]!;
  const last = samples[samples.length - 1]!;
  const summary = { chain: 'client -> balancer -> 2 servers', minutes: MINUTES, concurrency: CONCURRENCY, ...stats, serverReasons, rssMiB: { first: first.rssMiB, last: last.rssMiB, max: Math.max(...samples.map((s) => s.rssMiB)) }, fds: { first: first.fds, last: last.fds }, samples };
  if (JSON_OUT) console.log(JSON.stringify(summary));
  else console.log(JSON.stringify({ ...summary, samples: undefined }, null, 2));
  process.exit(stats.failures === 0 && stats.hostileServed <= 0 ? 0 : 1);
}

await main();
