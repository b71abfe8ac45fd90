/**
 * Balancing without etcd: strategies, weights, failover before the first
 * byte, passive ejection, health checks, draining removed backends, and the
 * same logic inside a client jumper with several --connect addresses.
 */
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { createBalancer, createClient, createServer, type BalanceJumper, type ConnSummary, type TunnelKey } from '../src/index.js';
import { parseAddress } from '../src/addr/address.js';
import { HealthChecker } from '../src/balance/health.js';
import { BackendPool } from '../src/balance/pool.js';
import { freePort } from './helpers/cli.js';
import { exchange, randomBytes, sha256, startEchoProvider, type Provider } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';
import { pollUntil } from './helpers/poll.js';

interface Backend {
  provider: Provider;
  /** The server jumper's address. */
  address: string;
}

/** `n` server jumpers, each in front of its own echo provider. */
async function startServers(t: ExecutionContext, key: TunnelKey, n: number): Promise<Backend[]> {
  const out: Backend[] = [];
  for (let i = 0; i < n; i++) {
    const provider = await startEchoProvider(t);
    const server = createServer({ listen: '127.0.0.1:0', connect: provider.address, key });
    await server.listen();
    t.teardown(() => server.close({ drainTimeoutMs: 100 }));
    out.push({ provider, address: `127.0.0.1:${server.port()}` });
  }
  return out;
}

async function startBalancer(t: ExecutionContext, options: Parameters<typeof createBalancer>[0]): Promise<BalanceJumper & { closed: ConnSummary[] }> {
  const balancer = Object.assign(createBalancer(options), { closed: [] as ConnSummary[] });
  balancer.on('close', (s) => balancer.closed.push(s));
  await balancer.listen();
  t.teardown(() => balancer.close({ drainTimeoutMs: 100 }));
  return balancer;
}

async function startClient(t: ExecutionContext, key: TunnelKey, connect: string | string[], extra: Partial<Parameters<typeof createClient>[0]> = {}) {
  // The strategy tests count streams per backend exactly: no preconnected wire (auto) may take a turn.
  const client = createClient({ listen: '127.0.0.1:0', connect, key, preconnect: 0, ...extra });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 100 }));
  return client;
}

/** Send a distinct payload on each of `n` sequential streams; every echo must hash-equal its payload. */
async function streams(t: ExecutionContext, port: number, n: number, bytes = 1024): Promise<void> {
  for (let i = 0; i < n; i++) {
    const payload = randomBytes(bytes);
    const { received, ending } = await exchange({ port }, payload);
    t.is(ending, 'end');
    if (sha256(received) !== sha256(payload)) t.fail(`stream ${i}: echo differs`);
  }
}

test('round-robin through a balancer: 300 streams, 100 to each of three servers, every stream hash-equal', async (t) => {
  const key = await makeKey();
  const servers = await startServers(t, key, 3);
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: servers.map((s) => s.address) });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  await streams(t, client.port()!, 300);
  t.deepEqual(
    servers.map((s) => s.provider.connections),
    [100, 100, 100],
  );
  // The consumer can see its echo end a moment before the balancer reports the close.
  await pollUntil(() => balancer.closed.length >= 300, 2000, 20);
  // The balancer logged where each stream went and holds no key.
  t.deepEqual(
    servers.map((s) => balancer.closed.filter((c) => c.target === s.address && c.reason === 'done').length),
    [100, 100, 100],
  );
  t.deepEqual(
    balancer.backends().map((b) => [b.total, b.active, b.state]),
    [
      [100, 0, 'up'],
      [100, 0, 'up'],
      [100, 0, 'up'],
    ],
  );
});

test('weights: a weight-3 backend gets three times the streams of a weight-1 backend', async (t) => {
  const key = await makeKey();
  const [a, b] = await startServers(t, key, 2);
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: [a!.address, `${b!.address},weight=3`] });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  await streams(t, client.port()!, 100, 16);
  t.deepEqual([a!.provider.connections, b!.provider.connections], [25, 75]);
});

test('failover: a refusing backend is skipped before any byte flows, then ejected; no stream fails', async (t) => {
  const key = await makeKey();
  const [live] = await startServers(t, key, 1);
  const dead = `127.0.0.1:${await freePort()}`;
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: [dead, live!.address], balance: { ejectAfter: 2, ejectBaseMs: 60_000 } });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  await streams(t, client.port()!, 20, 64);
  t.is(live!.provider.connections, 20);
  // A stream's close is recorded after its consumer saw the end: wait for all 20 before checking them.
  await pollUntil(() => balancer.closed.length >= 20, 5000);
  t.is(balancer.closed.length, 20);
  t.true(balancer.closed.every((c) => c.reason === 'done' && c.target === live!.address));
  const deadStatus = balancer.backends().find((b) => b.address === dead)!;
  t.is(deadStatus.state, 'ejected');
  // Ejected after 2 failures (for a minute): not retried for every stream.
  t.is(deadStatus.failures, 2);
});

test('all backends down: the stream is refused with reason backend_refused and nothing hangs', async (t) => {
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`] });
  const { received, ending } = await exchange({ port: balancer.port()! }, Buffer.from('x'));
  t.is(received.length, 0);
  t.true(ending === 'reset' || ending === 'end');
  t.is(balancer.closed[0]?.reason, 'backend_refused');
  t.is((balancer.closed[0]?.error as { code?: string }).code, 'JUMPER_ERR_BACKENDS_FAILED');
});

test('least-connections: a new stream goes to the backend with fewer open streams', async (t) => {
  const key = await makeKey();
  const [a, b] = await startServers(t, key, 2);
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: [a!.address, b!.address], balance: { strategy: 'least-connections' } });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  // Hold three streams open; they spread 2/1 or 1/2.
  const held: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const socket = net.connect({ port: client.port()!, host: '127.0.0.1' });
    t.teardown(() => socket.destroy());
    await new Promise<void>((resolve) => {
      socket.once('data', () => resolve());
      socket.write('hold');
    });
    held.push(socket);
  }
  const before = balancer.backends().map((s) => s.active);
  t.deepEqual([...before].sort(), [1, 2]);
  const emptier = before[0]! < before[1]! ? a! : b!;
  const connectionsBefore = emptier.provider.connections;
  await streams(t, client.port()!, 1, 16);
  t.is(emptier.provider.connections, connectionsBefore + 1);
});

test('health checks take a dead backend out of rotation and bring it back when it listens again', async (t) => {
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const balancer = await startBalancer(t, {
    listen: '127.0.0.1:0',
    backends: [`127.0.0.1:${port}`, provider.address],
    balance: { healthIntervalMs: 100 },
  });
  const waitState = async (address: string, state: string) => {
    for (let i = 0; i < 100; i++) {
      if (balancer.backends().find((b) => b.address === address)?.state === state) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.fail(`backend ${address} never became ${state}: ${JSON.stringify(balancer.backends())}`);
  };
  await waitState(`127.0.0.1:${port}`, 'down');
  // While down it gets no stream at all: not even a failed connect.
  await streams(t, balancer.port()!, 6, 16);
  t.is(balancer.backends().find((b) => b.address === `127.0.0.1:${port}`)?.failures, 0);
  const late = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => late.listen(port, '127.0.0.1', resolve));
  t.teardown(() => late.close());
  await waitState(`127.0.0.1:${port}`, 'up');
  await streams(t, balancer.port()!, 4, 16);
  t.is(balancer.backends().find((b) => b.address === `127.0.0.1:${port}`)?.total, 2);
});

test('health checks against server jumpers (which reset a stream that sent nothing) keep them up and crash nothing', async (t) => {
  const key = await makeKey();
  const servers = await startServers(t, key, 2);
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: servers.map((s) => s.address), balance: { healthIntervalMs: 50 } });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.teardown(() => process.off('uncaughtException', onUncaught));
  await new Promise((r) => setTimeout(r, 1000)); // about 20 rounds of checks
  t.deepEqual(uncaught, []);
  t.deepEqual(balancer.backends().map((b) => b.state), ['up', 'up']);
  await streams(t, client.port()!, 4, 1024);
  t.is(servers.reduce((n, s) => n + s.provider.connections, 0), 4);
});

test('a client jumper with several --connect addresses balances itself (no extra hop)', async (t) => {
  const key = await makeKey();
  const servers = await startServers(t, key, 3);
  const client = await startClient(t, key, servers.map((s) => s.address));
  await streams(t, client.port()!, 30, 256);
  t.deepEqual(
    servers.map((s) => s.provider.connections),
    [10, 10, 10],
  );
  t.is(client.backends().length, 3);
});

test('a stream open on a backend keeps flowing after the backend is removed; new streams avoid it', async (t) => {
  const key = await makeKey();
  const [a, b] = await startServers(t, key, 2);
  const balancer = await startBalancer(t, { listen: '127.0.0.1:0', backends: [a!.address, b!.address] });
  const client = await startClient(t, key, `127.0.0.1:${balancer.port()}`);
  // The first stream goes to a (round-robin starts with the first).
  const socket = net.connect({ port: client.port()!, host: '127.0.0.1', allowHalfOpen: true });
  t.teardown(() => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const first = randomBytes(4096);
  socket.write(first);
  while (Buffer.concat(chunks).length < first.length) await new Promise((r) => setTimeout(r, 10));
  t.is(a!.provider.connections, 1);
  // Remove a the way discovery would.
  t.is(balancer.backends().length, 2);
  balancer.updateBackends([{ address: b!.address, weight: 1 }]);
  t.is(balancer.backends().find((s) => s.address === a!.address)?.state, 'draining');
  await streams(t, client.port()!, 5, 16);
  t.is(a!.provider.connections, 1);
  t.is(b!.provider.connections, 5);
  const second = randomBytes(4096);
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  socket.end(second);
  await ended;
  t.is(sha256(Buffer.concat(chunks)), sha256(Buffer.concat([first, second])));
  // Drained and forgotten once its last stream ended.
  await pollUntil(() => balancer.backends().length <= 1, 1000, 20);
  t.deepEqual(
    balancer.backends().map((s) => s.address),
    [b!.address],
  );
});

function poolForTest(): BackendPool {
  return new BackendPool({
    strategy: 'round-robin',
    ejectAfter: 3,
    ejectBaseMs: 1_000,
    ejectMaxMs: 30_000,
    makeDialer: (address) => {
      parseAddress(address); // what the real dialers do first: a bad address throws
      return async () => {
        throw new Error('not dialled in this test');
      };
    },
  });
}

test('passive ejection: failures of dials still under way when a backend is ejected do not eject it again (the back-off stays at its first step)', (t) => {
  const pool = poolForTest();
  pool.update([{ address: '127.0.0.1:1', weight: 1 }, { address: '127.0.0.1:2', weight: 1 }]);
  const [bad] = pool.configured();
  const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
  for (let i = 0; i < 3; i++) pool.failed(bad!, refused);
  t.is(bad!.ejections, 1);
  const until = bad!.ejectedUntil;
  // 300 more connects that were in flight (a dark host: each times out) come back failed.
  for (let i = 0; i < 300; i++) pool.failed(bad!, refused);
  t.is(bad!.ejections, 1, 'ejected once, not once per three late failures');
  t.is(bad!.ejectedUntil, until, 'the ejection was not pushed back');
  t.is(pool.status().find((s) => s.address === '127.0.0.1:1')!.failures, 303, 'every failure is still counted');
  t.is(pool.pick(new Set())!.address, '127.0.0.1:2');
});

test('updateBackends: weights default to 1 and are checked; a bad spec changes nothing', (t) => {
  const pool = poolForTest();
  pool.update([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }]);
  t.deepEqual(pool.status().map((s) => s.weight), [1, 1]);
  // Round-robin over two weight-1 backends alternates (a missing weight made it NaN: always the first).
  const picks = Array.from({ length: 4 }, () => pool.pick(new Set())!.address);
  t.deepEqual(picks, ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:1', '127.0.0.1:2']);
  const cases = [
    [{ address: '127.0.0.1:3', weight: 0 }, 'JUMPER_ERR_INVALID_ARG'],
    [{ address: '127.0.0.1:3', weight: 1.5 }, 'JUMPER_ERR_INVALID_ARG'],
    [{ address: '' }, 'JUMPER_ERR_INVALID_ARG'],
    [{ address: 'db' }, 'JUMPER_ERR_BAD_ADDRESS'],
  ] as const;
  for (const [bad, code] of cases) {
    t.throws(() => pool.update([{ address: '127.0.0.1:1' }, bad]), { code } as never, JSON.stringify(bad));
    t.deepEqual(
      pool.status().map((s) => [s.address, s.state]),
      [
        ['127.0.0.1:1', 'up'],
        ['127.0.0.1:2', 'up'],
      ],
      `${JSON.stringify(bad)}: nothing was added or removed`,
    );
  }
});

test('a balancer that connects inside a network namespace takes IP literals only: a host name is refused at start and by updateBackends, and changes nothing', (t) => {
  // No namespace is entered here: the check is made before any connect (which would need root).
  const netnsHint = /given by address, not name/;
  t.throws(() => createBalancer({ listen: '127.0.0.1:0', backends: ['127.0.0.1:1', 'db.example:5432'], connectNetns: 'jumper-no-such-ns' }), {
    code: 'JUMPER_ERR_INVALID_ARG',
    message: netnsHint,
  } as never);
  const balancer = createBalancer({ listen: '127.0.0.1:0', backends: ['127.0.0.1:1', '[::1]:2', 'localhost:3'], connectNetns: 'jumper-no-such-ns' });
  t.throws(() => balancer.updateBackends([{ address: '127.0.0.1:1' }, { address: 'db.example:5432' }]), { code: 'JUMPER_ERR_INVALID_ARG', message: netnsHint } as never);
  t.deepEqual(balancer.backends().map((b) => b.address), ['127.0.0.1:1', '[::1]:2', 'localhost:3']);
  // With discovery only there is no configured backend to check: the designator is refused at start all the same.
  t.throws(() => createBalancer({ listen: '127.0.0.1:0', discover: 'etcd://127.0.0.1:1/jumper/x', connectNetns: 'containers/db' }), {
    code: 'JUMPER_ERR_INVALID_ARG',
    message: /bad network namespace "containers\/db"/,
  } as never);
});

test('health checks: a backend whose check hangs (a dark host) does not hold back the checks of the others', async (t) => {
  // The dialers stand in for the network here: what is tested is the checker's scheduling.
  const behaviour = new Map<string, 'hang' | 'ok' | 'refuse'>([
    ['127.0.0.1:1', 'hang'],
    ['127.0.0.1:2', 'ok'],
  ]);
  const pool = new BackendPool({
    strategy: 'round-robin',
    ejectAfter: 3,
    ejectBaseMs: 1_000,
    ejectMaxMs: 30_000,
    makeDialer: (address) => async () => {
      const what = behaviour.get(address);
      if (what === 'hang') return new Promise<never>(() => undefined);
      if (what === 'refuse') throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      return { on() {}, destroySoon() {} } as unknown as net.Socket;
    },
  });
  pool.update([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }]);
  const checker = new HealthChecker(pool, 60_000);
  void checker.checkAll(); // the first backend's check never finishes
  await new Promise((r) => setImmediate(r));
  behaviour.set('127.0.0.1:2', 'refuse');
  await Promise.race([checker.checkAll(), new Promise((r) => setTimeout(r, 200))]);
  t.is(pool.status().find((s) => s.address === '127.0.0.1:2')!.state, 'down', 'the second round checked the backend that answers');
});
