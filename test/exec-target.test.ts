/**
 * --connect exec:COMMAND: each stream is a fresh command's stdin/stdout.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createForward } from '../src/index.js';
import { cliBuilt, freePort, startJumper } from './helpers/cli.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { withTunnel } from './helpers/tunnel.js';
import { alive, killQuietly } from './helpers/pids.js';
import { pollUntil } from './helpers/poll.js';

const execFileAsync = promisify(execFile);

test('exec:cat behind a forwarder echoes 1 MiB hash-equal, one process per stream', async (t) => {
  const fwd = createForward({ listen: '127.0.0.1:0', connect: 'exec:cat' });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const bodies = [randomBytes(1024 * 1024), randomBytes(5000), randomBytes(1)];
  const results = await Promise.all(bodies.map((b) => exchange({ port: fwd.port()! }, b)));
  results.forEach((r, i) => t.is(sha256(r.received), sha256(bodies[i]!)));
  t.is(fwd.stats().total, 3);
});

test('exec: behind a server jumper: the command sees the decrypted stream', async (t) => {
  const tunnel = await withTunnel(t, { provider: 'exec:sha256sum' });
  const body = randomBytes(2 * 1024 * 1024);
  const result = await exchange({ port: tunnel.clientPort }, body);
  t.is(result.received.toString().split(' ')[0], sha256(body));
  const [closed] = await tunnel.closedOn('server', 1);
  t.is(closed!.reason, 'done');
});

test('a command that exits early closes the stream cleanly', async (t) => {
  const fwd = createForward({ listen: '127.0.0.1:0', connect: 'exec:head -c 10' });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const result = await exchange({ port: fwd.port()! }, Buffer.from('0123456789abcdef'), { keepOpen: true });
  t.is(result.received.toString(), '0123456789');
  t.is(result.ending, 'end');
});

test('a stream that ends first stops its command\'s whole process group (a background job too)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const jobFile = join(dir, 'job');
  const leaderFile = join(dir, 'leader');
  // Never reads its input: only a signal ends it, and the background job outlives a signal to the leader alone.
  const fwd = createForward({ listen: '127.0.0.1:0', connect: `exec:sleep 60 & echo $! > ${jobFile}; echo $$ > ${leaderFile}; wait` });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const socket = net.connect({ port: fwd.port()!, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.write('x');
  const read = (f: string) => Number((existsSync(f) && readFileSync(f, 'utf8').trim()) || 0);
  await pollUntil(() => Boolean(read(jobFile) && read(leaderFile)), 3000);
  const pids = [read(jobFile), read(leaderFile)];
  t.teardown(() => pids.forEach(killQuietly));
  t.true(pids.every((pid) => pid > 0 && alive(pid)), 'the command and its job run');
  // A reset ends the stream at once (a FIN would half-close it and wait for the command's output to end).
  socket.resetAndDestroy();
  await pollUntil(() => !pids.some(alive), 3000);
  t.deepEqual(pids.filter(alive), [], 'part of the command outlived its stream');
});

test('exec: without a command is refused', (t) => {
  t.throws(() => createForward({ listen: '127.0.0.1:0', connect: 'exec:' }), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
});

/**
 * Runs in a child: a forwarder to exec:cat, then one stream per step with the
 * fd limit set to what is open plus 1, 2, 3, ... spare, until a stream gets
 * through. Which call runs out first (the accept, the socket pair, the spawn's
 * pipes) depends on descriptors the runtime opens on its own, so the test
 * steps through them instead of guessing one count.
 */
const FD_STARVED_CHILD = `import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readdirSync } from 'node:fs';
import net from 'node:net';
const { createForward } = await import(process.argv[2]!);
const fwd = createForward({ listen: '127.0.0.1:0', connect: 'exec:cat' });
await fwd.listen();
let closed: { reason: string; error?: string }[] = [];
fwd.on('close', (s: { reason: string; error?: Error }) => closed.push({ reason: s.reason, error: s.error?.message }));
const exchange = (payload: string) =>
  new Promise<string>((resolve) => {
    const s = net.connect({ port: fwd.port()!, host: '127.0.0.1' }, () => s.end(payload));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(\`error \${e.code}\`));
    s.on('close', () => resolve(got));
    setTimeout(() => resolve('hang'), 10_000).unref();
  });
// prlimit runs in a helper started now: once the limit is low, this process cannot spawn one to raise it again.
const helper = spawn('/bin/sh', ['-c', 'while read n; do prlimit --pid $0 --nofile=$n:; echo ok; done', String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'] });
const replies = createInterface({ input: helper.stdout! })[Symbol.asyncIterator]();
const setLimit = async (soft: string) => {
  helper.stdin!.write(soft + '\\n');
  await replies.next();
};
const hard = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '--output=HARD']).toString().trim();
const warm = await exchange('warm');
// Its close is recorded once cat has exited: wait for it, so it is not counted in the first step.
for (let i = 0; i < 500 && closed.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
const steps = [];
for (let spare = 1; spare <= 12; spare++) {
  closed = [];
  const open = readdirSync('/proc/self/fd').length - 1;
  await setLimit(String(open + spare));
  const got = await exchange('hello');
  await new Promise((r) => setTimeout(r, 100));
  await setLimit(hard);
  await new Promise((r) => setTimeout(r, 100));
  steps.push({ spare, got, closed });
  if (got === 'hello') break;
}
for (let i = 0; i < 500 && fwd.stats().active > 0; i++) await new Promise((r) => setTimeout(r, 10));
process.stdout.write(JSON.stringify({ warm, steps, active: fwd.stats().active }) + '\\n');
process.exit(0);
`;

interface StarvedStep { spare: number; got: string; closed: { reason: string; error?: string }[] }

test('exec: a command that cannot be started for want of descriptors (EMFILE) fails its stream with target_unreachable; the process keeps running', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'starved.mts');
  writeFileSync(script, FD_STARVED_CHILD);
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', script, fileURLToPath(new URL('../src/index.ts', import.meta.url))], { timeout: 60_000 });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as { warm: string; steps: StarvedStep[]; active: number };
  t.log(result.steps.map((s) => `${s.spare} spare: ${s.got || '(nothing)'} ${s.closed.map((c) => `${c.reason} ${c.error ?? ''}`).join('; ')}`).join('\n'));
  t.is(result.warm, 'warm');
  t.true(result.steps.every((s) => s.got !== 'hang'), 'no starved stream hangs');
  // Once the limit allows it, streams get through again: the process kept running.
  t.is(result.steps.at(-1)!.got, 'hello');
  const starved = result.steps.slice(0, -1).flatMap((s) => s.closed);
  t.true(starved.every((c) => c.reason === 'target_unreachable'), 'every starved stream that was accepted ends target_unreachable');
  // One step had descriptors for the accept and the socket pair but not the spawn's pipes.
  t.true(starved.some((c) => /cannot start .*EMFILE/.test(c.error ?? '')), 'a spawn failed for want of descriptors');
  t.is(result.active, 0);
});

const cliTest = cliBuilt ? test : test.skip;
if (!cliBuilt) console.log('skipping the exec: CLI test: dist/ is not built');

cliTest('exec: a command still running when the jumper exits (drain timeout) gets SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'pid');
  const port = await freePort();
  // A command that never reads its input: only a signal ends it.
  const cli = startJumper(t, ['forward', '--listen', `127.0.0.1:${port}`, '--connect', `exec:echo $$ > ${pidFile}; exec sleep 60`, '--drain-timeout', '200ms']);
  await cli.waitFor((l) => l.msg === 'forward jumper listening');
  const socket = net.connect({ port, host: '127.0.0.1' });
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  socket.write('x');
  let pid = 0;
  for (let i = 0; i < 300 && !pid; i++) {
    await new Promise((r) => setTimeout(r, 10));
    pid = Number((existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()) || 0);
  }
  t.true(pid > 0, 'the command started');
  t.teardown(() => killQuietly(pid));
  cli.child.kill('SIGTERM');
  await cli.exited;
  await pollUntil(() => !alive(pid), 2000);
  t.false(alive(pid), 'the command outlived the jumper');
});


const hasSetpriv = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
if (!hasSetpriv) console.log('skipping the exec: SIGKILL test: setpriv (util-linux) is not installed');

(cliBuilt && hasSetpriv ? test : test.skip)('exec: a jumper killed with SIGKILL (no exit hooks) takes its running commands with it (setpriv --pdeathsig)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  // Commands that never read their input: the stream's EOF would not end them, only a signal.
  const cli = startJumper(t, ['forward', '--listen', `127.0.0.1:${port}`, '--connect', `exec:echo $$ > ${dir}/pid.$$; exec sleep 60`]);
  await cli.waitFor((l) => l.msg === 'forward jumper listening');
  const sockets = [0, 1].map(() => net.connect({ port, host: '127.0.0.1' }).on('error', () => {}));
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  sockets.forEach((s) => s.write('x'));
  let pids: number[] = [];
  for (let i = 0; i < 300 && pids.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
    pids = readdirSync(dir)
      .filter((f) => f.startsWith('pid.'))
      .map((f) => Number(readFileSync(join(dir, f), 'utf8').trim()))
      .filter((pid) => pid > 0);
  }
  t.is(pids.length, 2, 'both commands started');
  t.teardown(() => pids.forEach(killQuietly));
  cli.child.kill('SIGKILL');
  await cli.exited;
  await pollUntil(() => !pids.some(alive), 2000);
  t.deepEqual(pids.filter(alive), [], 'no command outlived the jumper');
});

/** Connect, send `bytes` without half-closing, and wait (at most `ms`) for the jumper to end the stream: whether it did. */
async function endedAfterSending(port: number, bytes: Buffer, ms: number): Promise<boolean> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.resume();
  try {
    socket.write(bytes);
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      socket.once('end', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  } finally {
    socket.destroy();
  }
}

cliTest('exec: a command that exits leaving exactly 128 KiB unread does not freeze the jumper (the child made the shared socket blocking)', async (t) => {
  const port = await freePort();
  // Never reads its input. libuv makes a child's stdio blocking, and the jumper shares that socket:
  // draining it after the exit read 64 KiB, 64 KiB, then blocked the event loop on the empty socket.
  const cli = startJumper(t, ['forward', '--listen', `127.0.0.1:${port}`, '--connect', 'exec:sleep 0.3']);
  await cli.waitFor((l) => l.msg === 'forward jumper listening');
  t.true(await endedAfterSending(port, randomBytes(128 * 1024), 5_000), 'the stream ended after the command exited');
  t.true(await endedAfterSending(port, Buffer.from('x'), 5_000), 'the next stream is served too');
  t.is(cli.child.exitCode, null, 'the jumper is still running');
});
