/**
 * Packet loss between the jumpers: the client dials from network namespace
 * A, the server listens in namespace B, joined by a veth pair (the jumpers
 * themselves run in this process; the provider is on host loopback).
 *  - 30% loss (netem) on A's side: TCP retransmits, the stream completes
 *    hash-equal. Without netem (this CI's kernel has no sch_netem), a token
 *    bucket bottleneck with a tiny queue on both veth ends drops packets
 *    instead; the test checks the kernel counted drops, so loss was real.
 *  - 100% loss once the TCP connection is up: both sides give up with
 *    handshake_timeout within the configured timeout. Done with netem when
 *    the kernel has it, else by taking A's link down (the same to TCP).
 * Needs root; netem needs sch_netem (skipped with a reason when missing).
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createClient, createServer, type ConnSummary, type Dialer } from '../src/index.js';
import { nativeAvailable } from '../src/native/binding.js';
import { connectInNetns } from '../src/netns/sockets.js';
import { captureLogger } from './helpers/capture-logger.js';
import { createNetns, createVethPair, netnsUnsupportedReason, type TestNetns, type VethPair } from './helpers/netns.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';

const run = promisify(execFile);
/** The 100 % loss test waits this out. */
const HANDSHAKE_TIMEOUT_MS = 1_500;
/** 30 % loss: several lost hellos in a row must not end the stream. */
const LOSSY_HANDSHAKE_TIMEOUT_MS = 15_000;

function unsupported(): string | undefined {
  return netnsUnsupportedReason() ?? (nativeAvailable() ? undefined : 'the native addon (namespace sockets) is not built');
}

/** Why netem cannot be used in `ns`, or undefined when a qdisc was added and removed fine. */
async function netemUnavailable(ns: TestNetns, ifname: string): Promise<string | undefined> {
  try {
    await run('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'add', 'dev', ifname, 'root', 'netem', 'loss', '0%']);
    await run('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'del', 'dev', ifname, 'root']);
    return undefined;
  } catch (err) {
    return `tc netem unavailable (${String((err as { stderr?: string }).stderr ?? err).trim()}; modprobe sch_netem may help)`;
  }
}

/** Packets the root qdisc of `ifname` in `ns` dropped so far. */
async function droppedPackets(ns: TestNetns, ifname: string): Promise<number> {
  const { stdout } = await run('ip', ['netns', 'exec', ns.name, 'tc', '-s', 'qdisc', 'show', 'dev', ifname]);
  return [...stdout.matchAll(/dropped (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** A slow link with a queue far smaller than TCP's window: it overflows and drops. */
async function setBottleneck(ns: TestNetns, ifname: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'replace', 'dev', ifname, 'root', 'tbf', 'rate', '40mbit', 'burst', '64kb', 'limit', '96kb']);
}

async function setLoss(ns: TestNetns, ifname: string, percent: number): Promise<void> {
  await run('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', 'replace', 'dev', ifname, 'root', 'netem', 'loss', `${percent}%`]);
}

interface Chain {
  a: TestNetns;
  b: TestNetns;
  veth: VethPair;
  clientPort: number;
  clientClosed: Promise<ConnSummary>;
  serverClosed: Promise<ConnSummary>;
}

/**
 * Server listening on B's veth address, client dialling from A; `afterConnect` runs once the TCP
 * connection is up. Under loss a handshake needs retransmits (200 ms and up, 1 s for a SYN).
 */
async function chain(t: ExecutionContext, handshakeTimeoutMs: number, afterConnect?: () => Promise<void>): Promise<Chain> {
  const a = await createNetns(t, 'lossa');
  const b = await createNetns(t, 'lossb');
  const veth = await createVethPair(t, a, b);
  const provider = await startEchoProvider(t);
  const key = await makeKey();
  const server = createServer({ listen: `${veth.b.address}:0`, listenNetns: b.name, connect: provider.address, key, handshakeTimeoutMs, logger: captureLogger() });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const port = Number(server.address().split(':').pop());
  const dialer: Dialer = async () => {
    const socket = await connectInNetns(a.name, { kind: 'tcp', host: veth.b.address, port }, { timeoutMs: 20_000, allowHalfOpen: true });
    await afterConnect?.();
    return socket;
  };
  const client = createClient({ listen: '127.0.0.1:0', connect: `${veth.b.address}:${port}`, dialer, key, handshakeTimeoutMs, logger: captureLogger() });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  return {
    a,
    b,
    veth,
    clientPort: client.port()!,
    clientClosed: new Promise((resolve) => client.once('close', resolve)),
    serverClosed: new Promise((resolve) => server.once('close', resolve)),
  };
}

test('packet loss between the jumpers (netem 30%, or an overflowing bottleneck queue): the stream still completes hash-equal', async (t) => {
  t.timeout(90_000);
  const why = unsupported();
  if (why) {
    t.log(`skipped: ${why}`);
    t.pass();
    return;
  }
  const c = await chain(t, LOSSY_HANDSHAKE_TIMEOUT_MS);
  const noNetem = await netemUnavailable(c.a, c.veth.a.ifname);
  if (noNetem) {
    t.log(`${noNetem}: dropping packets with an overflowing token-bucket queue instead`);
    await setBottleneck(c.a, c.veth.a.ifname);
    await setBottleneck(c.b, c.veth.b.ifname);
  } else {
    await setLoss(c.a, c.veth.a.ifname, 30);
  }
  const body = randomBytes(noNetem ? 8 * 1024 * 1024 : 1024 * 1024);
  const result = await exchange({ port: c.clientPort }, body);
  t.is(sha256(result.received), sha256(body));
  t.is((await c.serverClosed).reason, 'done');
  const dropped = (await droppedPackets(c.a, c.veth.a.ifname)) + (await droppedPackets(c.b, c.veth.b.ifname));
  t.log(`packets dropped between the jumpers: ${dropped}`);
  t.true(dropped > 0, 'no packet was dropped: the test did not exercise loss');
});

test('100% loss after the TCP connect: both jumpers give up with handshake_timeout', async (t) => {
  t.timeout(60_000);
  const why = unsupported();
  if (why) {
    t.log(`skipped: ${why}`);
    t.pass();
    return;
  }
  let cut: () => Promise<void> = async () => {};
  let how = '';
  const c = await chain(t, HANDSHAKE_TIMEOUT_MS, () => cut());
  const noNetem = await netemUnavailable(c.a, c.veth.a.ifname);
  if (noNetem) {
    how = `link down (${noNetem})`;
    cut = () => run('ip', ['-n', c.a.name, 'link', 'set', c.veth.a.ifname, 'down']).then(() => undefined);
  } else {
    how = 'netem loss 100%';
    cut = () => setLoss(c.a, c.veth.a.ifname, 100);
  }
  t.log(`100% loss by ${how}`);
  const result = await exchange({ port: c.clientPort }, Buffer.from('never arrives'), { keepOpen: true });
  t.is(result.ending, 'reset');
  t.is(result.received.length, 0);
  const client = await c.clientClosed;
  const server = await c.serverClosed;
  t.is(client.reason, 'handshake_timeout');
  t.is(server.reason, 'handshake_timeout');
  // Generous: the timer is armed after the dial, and timers may run late on a busy machine.
  t.true(client.durationMs < HANDSHAKE_TIMEOUT_MS + 5_000, `client gave up after ${client.durationMs} ms`);
});
