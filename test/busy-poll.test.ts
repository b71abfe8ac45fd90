/**
 * --busy-poll (native/src/busy_poll.cc via src/native/busy-poll.ts): a
 * client and a server jumper as real processes, a request/response exchange
 * through them to an echo provider, and what the kernel says their native
 * data-path threads ("jumper-reactor") did: how often they went to sleep
 * (voluntary context switches) and how much CPU they used
 * (/proc/PID/task/TID/schedstat).
 *
 * Serial: the sleep counts are per exchange, and another test's traffic in
 * this process would delay the echoes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { applyBusyPoll, InvalidArgumentError, MAX_BUSY_POLL_US, setBusyPoll } from '../src/index.js';
import { silentLogger } from '../src/log/logger.js';
import { Supervisor } from '../src/config/run.js';
import { captureLogger } from './helpers/capture-logger.js';
import { nativeExports } from '../src/native/binding.js';
import { nativePumpAvailable } from '../src/native/pump.js';
import { nativeSpliceAvailable } from '../src/native/splice.js';
import { makeKeyFile, spawnJumper, type ChildJumper } from './helpers/child-jumper.js';
import { hasCommand } from './helpers/commands.js';
import { runJumperSrc, startJumperSrc } from './helpers/run-cli.js';
import { startEchoProvider } from './helpers/providers.js';

const TRIPS = 100;
/** Exchanges per measurement: the polling figure is the best of them, so one stalled by other tests on a busy machine does not decide. */
const BATCHES = 3;
const MESSAGE = 64;
/**
 * 10 ms, the largest budget: the echo's round trip includes this test process and its provider,
 * which a loaded machine can hold off for milliseconds. Polling lasts only as long as the exchanges.
 */
const BUDGET_US = 10_000;

// What setBusyPoll reports: the binding is there and a native data path is switched on.
const built = nativeExports<{ setBusyPoll(us: number): void }>(['setBusyPoll']) !== undefined && (nativePumpAvailable() || nativeSpliceAvailable());
const cpus = (() => {
  try {
    return execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return '1';
  }
})();
const why = !built ? 'the native addon (with setBusyPoll) is not built, or the native data paths are switched off' : Number(cpus) < 2 ? `busy polling needs two CPUs, this process may use ${cpus}` : undefined;
if (why) console.log(`busy-poll.test.ts: skipping the reactor-thread tests: ${why}`);
const nativeTest = why ? test.serial.skip : test.serial;
const hasTaskset = hasCommand('taskset', ['-V']);
if (!why && !hasTaskset) console.log('busy-poll.test.ts: skipping the one-CPU test: taskset (util-linux) is not installed');
const pinnedTest = why || !hasTaskset ? test.serial.skip : test.serial;

interface ThreadUse {
  sleeps: number;
  cpuNs: number;
}

/** Sleeps and CPU time, summed over a process's jumper-reactor threads. */
function reactorUse(pid: number): ThreadUse & { threads: number } {
  const out = { sleeps: 0, cpuNs: 0, threads: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${tid}`;
    try {
      if (readFileSync(`${dir}/comm`, 'utf8').trim() !== 'jumper-reactor') continue;
      out.sleeps += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`${dir}/status`, 'utf8'))![1]);
      out.cpuNs += Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]);
      out.threads++;
    } catch {
      // the thread is gone
    }
  }
  return out;
}

/** A client -> server pair in front of an echo provider, each jumper started with `extra`. */
async function startPair(t: ExecutionContext, extra: string[]): Promise<{ client: ChildJumper; server: ChildJumper }> {
  const provider = await startEchoProvider(t);
  const key = await makeKeyFile(t);
  const server = await spawnJumper(t, ['server', '--listen', '127.0.0.1:0', '--connect', provider.address, '--key', key.path, ...extra]);
  const client = await spawnJumper(t, ['client', '--listen', '127.0.0.1:0', '--connect', `127.0.0.1:${server.port}`, '--key', key.path, ...extra]);
  return { client, server };
}

/**
 * `trips` round trips of MESSAGE bytes on one connection, one in flight;
 * resolves with the sha256 of everything sent and of everything echoed.
 */
async function pingPong(port: number, trips: number): Promise<{ sent: string; echoed: string }> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  const sent = createHash('sha256');
  const echoed = createHash('sha256');
  try {
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      let pending = 0;
      const send = (): void => {
        const msg = Buffer.alloc(MESSAGE, done & 0xff);
        sent.update(msg);
        pending = MESSAGE;
        socket.write(msg);
      };
      const timer = setTimeout(() => reject(new Error(`ping-pong: ${done}/${trips} round trips after 30 s`)), 30_000);
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        echoed.update(chunk);
        pending -= chunk.length;
        if (pending > 0) return;
        if (++done === trips) {
          clearTimeout(timer);
          resolve();
        } else send();
      });
      send();
    });
  } finally {
    socket.destroy();
  }
  return { sent: sent.digest('hex'), echoed: echoed.digest('hex') };
}

/**
 * Reactor sleeps per round trip in each jumper of the pair: one exchange of
 * TRIPS per batch (after a warm-up one), the fewest of BATCHES batches.
 */
async function sleepsPerTrip(t: ExecutionContext, pair: { client: ChildJumper; server: ChildJumper }): Promise<{ client: number; server: number }> {
  await pingPong(pair.client.port, 20);
  const best = { client: Infinity, server: Infinity };
  for (let batch = 0; batch < BATCHES; batch++) {
    const before = [reactorUse(pair.client.pid), reactorUse(pair.server.pid)];
    const { sent, echoed } = await pingPong(pair.client.port, TRIPS);
    const after = [reactorUse(pair.client.pid), reactorUse(pair.server.pid)];
    t.is(echoed, sent, 'every byte came back, in order');
    t.true(after[0]!.threads > 0 && after[1]!.threads > 0, 'both jumpers run the native data path');
    const per = (i: number) => (after[i]!.sleeps - before[i]!.sleeps) / TRIPS;
    best.client = Math.min(best.client, per(0));
    best.server = Math.min(best.server, per(1));
  }
  return best;
}

nativeTest('a polling reactor stays awake between the records of an exchange; without --busy-poll it sleeps for each', async (t) => {
  const polling = await sleepsPerTrip(t, await startPair(t, ['--busy-poll', String(BUDGET_US)]));
  const sleeping = await sleepsPerTrip(t, await startPair(t, []));
  t.log(`reactor sleeps per round trip: --busy-poll ${BUDGET_US}: client ${polling.client.toFixed(2)}, server ${polling.server.toFixed(2)}; off: client ${sleeping.client.toFixed(2)}, server ${sleeping.server.toFixed(2)}`);
  // Off: the request and the response each find the thread asleep (about 2 per trip).
  t.true(sleeping.client > 1 && sleeping.server > 1, 'without polling, every record wakes the reactor');
  t.true(polling.client < 0.5 && polling.server < 0.5, 'with polling, the next record arrives while the reactor polls');
});

pinnedTest('a jumper allowed on one CPU does not poll (the event it waits for needs that CPU)', async (t) => {
  const pair = await startPair(t, ['--busy-poll', String(BUDGET_US)]);
  for (const pid of [pair.client.pid, pair.server.pid]) execFileSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' });
  const pinned = await sleepsPerTrip(t, pair);
  t.log(`reactor sleeps per round trip, pinned to CPU 0 with --busy-poll ${BUDGET_US}: client ${pinned.client.toFixed(2)}, server ${pinned.server.toFixed(2)}`);
  // Polling would be about 0.02 (see above); pinned, some records find the thread still on its CPU (1.2–2.0 measured).
  t.true(pinned.client > 0.75 && pinned.server > 0.75, 'records find the reactor asleep, as without --busy-poll');
});

nativeTest('polling ends with the budget: an idle polling jumper uses no CPU', async (t) => {
  const pair = await startPair(t, ['--busy-poll', String(BUDGET_US)]);
  await pingPong(pair.client.port, 50);
  // Past the connection's close (its last wake-ups may each poll a budget).
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = [reactorUse(pair.client.pid), reactorUse(pair.server.pid)];
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = [reactorUse(pair.client.pid), reactorUse(pair.server.pid)];
  const usedMs = after.map((a, i) => (a.cpuNs - before[i]!.cpuNs) / 1e6);
  t.log(`reactor CPU over 1 s idle after traffic: client ${usedMs[0]!.toFixed(1)} ms, server ${usedMs[1]!.toFixed(1)} ms (budget ${BUDGET_US / 1000} ms per wake-up)`);
  // Nothing happens in this second: a thread that kept polling would use about 1000 ms.
  for (const ms of usedMs) t.true(ms < 100, `${ms.toFixed(1)} ms of CPU while idle`);
});

test('setBusyPoll takes whole microseconds from 0 to MAX_BUSY_POLL_US', (t) => {
  for (const bad of [-1, 1.5, MAX_BUSY_POLL_US + 1, Number.NaN]) {
    const err = t.throws(() => setBusyPoll(bad), { instanceOf: InvalidArgumentError });
    t.is((err as { code?: string }).code, 'JUMPER_ERR_INVALID_ARG');
  }
  // 0 is always accepted; whether it took effect depends on the addon.
  t.is(setBusyPoll(0), built);
});

test('jumper refuses a --busy-poll out of range with a usage error', async (t) => {
  for (const bad of ['10001', '-5', '2.5', 'fast']) {
    const r = await runJumperSrc(['forward', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--busy-poll', bad]);
    t.is(r.code, 2, `--busy-poll ${bad}: exit 2`);
    t.regex(r.stderr, /--busy-poll <microseconds>.*expected whole microseconds from 0 to 10000/s, r.stderr);
  }
});

test("jumper refuses --busy-poll where no stream runs on the native threads: spiped protocol, exec: targets, a forward's handoff:", async (t) => {
  const { path } = await makeKeyFile(t);
  const cases: [string[], RegExp][] = [
    [['server', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', path, '--protocol', 'spiped'], /--busy-poll applies only with the jumper protocol/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', path, '--protocol', 'spiped'], /--busy-poll applies only with the jumper protocol/],
    [['forward', '--listen', '127.0.0.1:0', '--connect', 'exec:cat'], /--busy-poll applies only with a --connect target served by the native data path/],
    [['forward', '--listen', '127.0.0.1:0', '--connect', 'handoff:/run/nothing.sock'], /--busy-poll applies only with a --connect target served by the native data path/],
    [['server', '--listen', '127.0.0.1:0', '--connect', 'exec:cat', '--key', path], /--busy-poll applies only with a --connect target served by the native data path/],
  ];
  for (const [args, message] of cases) {
    const r = await runJumperSrc([...args, '--busy-poll', '50']);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, message, r.stderr);
  }
  // A server's handoff: target is a socket pair the native pump serves: accepted.
  const server = await spawnJumper(t, ['server', '--listen', '127.0.0.1:0', '--connect', 'handoff:/run/nothing.sock', '--key', path, '--busy-poll', '50']);
  t.true(server.port > 0, 'a server handing off to a receiver starts with --busy-poll');
});

test('without the native data path, --busy-poll is a warning and the tunnel still works', async (t) => {
  const provider = await startEchoProvider(t);
  const forward = await spawnJumper(t, ['forward', '--listen', '127.0.0.1:0', '--connect', provider.address, '--busy-poll', '50'], { env: { JUMPER_NO_NATIVE: '1' } });
  const warning = forward.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('busy-poll ignored'));
  t.truthy(warning, forward.stderr());
  t.is(warning!.busyPollUs, 50);
  const { sent, echoed } = await pingPong(forward.port, 10);
  t.is(echoed, sent);
});

/** A `jumper run` file with one forward link to an echo provider; write(n) sets its top-level busy-poll. */
async function runConfigFile(t: ExecutionContext): Promise<{ file: string; write(busyPoll: number): void; provider: { address: string } }> {
  const provider = await startEchoProvider(t);
  const { dir } = await makeKeyFile(t);
  const file = join(dir, 'jumper.yaml');
  const write = (busyPoll: number): void =>
    writeFileSync(file, `busy-poll: ${busyPoll}\nlinks:\n  - name: fwd\n    role: forward\n    listen: 127.0.0.1:0\n    connect: ${provider.address}\n`);
  return { file, write, provider };
}

test('jumper run: busy-poll from the file, changed by a reload; a bad value names the line', async (t) => {
  const { file, write, provider } = await runConfigFile(t);
  write(-1);
  const bad = await runJumperSrc(['run', '--config', file, '--check']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /jumper\.yaml:1: busy-poll: .*10000/, bad.stderr);
  writeFileSync(file, `links:\n  - name: fwd\n    role: forward\n    listen: 127.0.0.1:0\n    connect: ${provider.address}\n    busy-poll: 50\n`);
  const perLink = await runJumperSrc(['run', '--config', file, '--check']);
  t.is(perLink.code, 2);
  t.regex(perLink.stderr, /jumper\.yaml:6: links\[0\]\.busy-poll: a top-level key/, perLink.stderr);

  write(40);
  const run = startJumperSrc(t, ['run', '--config', file], built ? {} : { env: { JUMPER_NO_NATIVE: '1' } });
  const on = await run.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('busy-poll'));
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  if (!built) {
    t.regex(on.msg as string, /^busy-poll ignored/);
    return;
  }
  t.is(on.busyPollUs, 40);
  write(0);
  run.child.kill('SIGHUP');
  const off = await run.waitFor((l) => l.msg === 'busy-poll off');
  t.is(off.busyPollUs, 0);
  t.truthy(run.logs.find((l) => l.msg === 'configuration reloaded'), 'the reload itself went through');
});

test('jumper run: --busy-poll wins over the file, also across a reload', async (t) => {
  const { file, write } = await runConfigFile(t);
  write(40);
  const run = startJumperSrc(t, ['run', '--config', file, '--busy-poll', '30'], built ? {} : { env: { JUMPER_NO_NATIVE: '1' } });
  const on = await run.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('busy-poll'));
  t.is(on.busyPollUs, 30, 'the command line, not the file');
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  write(0);
  run.child.kill('SIGHUP');
  await run.waitFor((l) => l.msg === 'configuration reloaded');
  // A second reload: its "configuration reloaded" line comes after anything the first one applied.
  run.child.kill('SIGHUP');
  await run.waitFor((l) => l.msg === 'configuration reloaded' && run.logs.filter((x) => x.msg === 'configuration reloaded').length === 2);
  t.deepEqual(
    run.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('busy-poll')).map((l) => l.busyPollUs),
    [30],
    'the file changing does not change what the command line set',
  );
});

test.serial('Supervisor (the library behind jumper run) applies the file\'s busy-poll at start and on reload; its busyPollUs option wins', async (t) => {
  t.teardown(() => applyBusyPoll(0, silentLogger));
  t.throws(() => new Supervisor({ file: '/nonexistent.yaml', busyPollUs: MAX_BUSY_POLL_US + 1 }), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
  const { file, write } = await runConfigFile(t);
  const budgets = (log: ReturnType<typeof captureLogger>) => log.lines.filter((l) => l.msg.startsWith('busy-poll')).map((l) => [l.busyPollUs, l.level]);
  // Without the native path each change is a warning instead (and 0 is silent).
  const level = built ? 'info' : 'warn';

  write(40);
  const fromFile = captureLogger();
  const supervisor = new Supervisor({ file, logger: fromFile });
  t.teardown(() => supervisor.stop(0));
  await supervisor.start();
  t.deepEqual(budgets(fromFile), [[40, level]]);
  write(25);
  t.truthy(await supervisor.reload());
  write(0);
  t.truthy(await supervisor.reload());
  t.deepEqual(budgets(fromFile), built ? [[40, 'info'], [25, 'info'], [0, 'info']] : [[40, 'warn'], [25, 'warn']]);
  await supervisor.stop(0);

  write(40);
  const fromOption = captureLogger();
  const overridden = new Supervisor({ file, logger: fromOption, busyPollUs: 30 });
  t.teardown(() => overridden.stop(0));
  await overridden.start();
  write(10);
  t.truthy(await overridden.reload());
  t.deepEqual(budgets(fromOption), [[30, level]], 'the file changing does not change what the option set');
});
