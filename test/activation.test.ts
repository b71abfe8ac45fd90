/**
 * Inherited listeners: systemd's own systemd-socket-activate starts the
 * jumper, which serves through the passed socket (by name, all, or fd:N).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenFds, parseInheritedSpec } from '../src/activation/systemd.js';
import { cliBuilt, freePort, JUMPER } from './helpers/cli.js';
import { killAtTeardown } from './helpers/netns.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { pollUntil } from './helpers/poll.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const reason = !existsSync(ACTIVATE) ? `${ACTIVATE} missing (apt-get install systemd)` : !cliBuilt ? 'dist/ is not built' : undefined;
const activateTest = reason ? test.skip : test;
if (reason) console.log(`skipping socket-activation tests: ${reason}`);

/** Retry until the activator listens, then exchange once. */
async function exchangeWhenUp(port: number, body: Buffer) {
  for (let i = 0; i < 50; i++) {
    try {
      return await exchange({ port }, body);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('activator never listened');
}

for (const [title, fdname, listen] of [
  ['by name (systemd:NAME)', 'tunnel', 'systemd:tunnel'],
  ['all passed sockets (systemd)', 'whatever', 'systemd'],
  ['by number (fd:3)', 'x', 'fd:3'],
] as const) {
  activateTest(`systemd-socket-activate starts a forward jumper that serves the inherited socket ${title}`, async (t) => {
    const provider = await startEchoProvider(t);
    const port = await freePort();
    const child = spawn(ACTIVATE, ['-l', `127.0.0.1:${port}`, `--fdname=${fdname}`, process.execPath, JUMPER, 'forward', '--listen', listen, '--connect', provider.address, '--log-format', 'json'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    killAtTeardown(t, child);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const body = randomBytes(300_000);
    const result = await exchangeWhenUp(port, body);
    t.is(sha256(result.received), sha256(body), stderr);
    t.is(provider.connections, 1);
    t.regex(stderr, /"msg":"forward jumper listening"/);
  });
}

activateTest('the inherited listening socket is not passed on to the commands jumper starts (close-on-exec, as sd_listen_fds sets it)', async (t) => {
  const port = await freePort();
  // The command lists its own descriptors: 0 and 1 are its stream, 2 the stderr pipe; a socket above was leaked.
  const child = spawn(ACTIVATE, ['-l', `127.0.0.1:${port}`, process.execPath, JUMPER, 'forward', '--listen', 'systemd', '--connect', 'exec:ls -l /proc/self/fd'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  killAtTeardown(t, child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const result = await exchangeWhenUp(port, Buffer.from('x'));
  const listing = result.received.toString();
  const sockets = [...listing.matchAll(/ (\d+) -> socket:/g)].map((m) => Number(m[1]));
  t.deepEqual(sockets, [0, 1, 2], `${listing}\n${stderr}`);
});

activateTest('LISTEN_PID naming another process is ignored, as the protocol says', async (t) => {
  const child = spawn(process.execPath, [JUMPER, 'forward', '--listen', 'systemd', '--connect', '127.0.0.1:1'], {
    env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'x' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.is(code, 2);
  t.regex(stderr, /no sockets were passed by systemd/);
});

test('listenFds: counts from fd 3, names from LISTEN_FDNAMES, unsets the variables', (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'web:admin' };
  t.deepEqual(listenFds(env, 42), [
    { fd: 3, name: 'web' },
    { fd: 4, name: 'admin' },
  ]);
  t.is(env.LISTEN_FDS, undefined);
  t.deepEqual(listenFds({ LISTEN_FDS: '2', LISTEN_PID: '43' }, 42), []);
  t.deepEqual(listenFds({ LISTEN_FDS: '1', LISTEN_PID: '42' }, 42), [{ fd: 3, name: 'unknown' }]);
});

test('parseInheritedSpec: systemd, systemd:NAME, fd:N, and addresses left alone', (t) => {
  t.deepEqual(parseInheritedSpec('systemd'), { kind: 'systemd' });
  t.deepEqual(parseInheritedSpec('systemd:web'), { kind: 'systemd', name: 'web' });
  t.deepEqual(parseInheritedSpec('fd:7'), { kind: 'fd', fd: 7 });
  t.is(parseInheritedSpec('127.0.0.1:80'), undefined);
  t.throws(() => parseInheritedSpec('fd:x'), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
  t.throws(() => parseInheritedSpec('systemd:'), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
});

activateTest('jumper run: a reload that changes a link on an inherited socket keeps serving it (the new instance listens on the same socket)', async (t) => {
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'jumper-act-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'jumper.yaml');
  const config = (timeout: string) => `links:\n  - name: t\n    role: forward\n    listen: systemd:tunnel\n    connect: ${provider.address}\n    connect-timeout: ${timeout}\n`;
  writeFileSync(file, config('5s'));
  const child = spawn(ACTIVATE, ['-l', `127.0.0.1:${port}`, '--fdname=tunnel', process.execPath, JUMPER, 'run', '--config', file, '--log-format', 'json'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  killAtTeardown(t, child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  for (const round of [1, 2, 3]) {
    const body = randomBytes(100_000 + round);
    const result = await exchangeWhenUp(port, body);
    t.is(sha256(result.received), sha256(body), `round ${round}: ${stderr}`);
    if (round === 3) break;
    // A changed link is replaced by a new instance on the same inherited socket.
    writeFileSync(file, config(round === 1 ? '4s' : '3s'));
    const count = (re: RegExp) => (stderr.match(re) ?? []).length;
    const reloads = count(/"msg":"configuration reloaded"/g);
    child.kill('SIGHUP');
    await pollUntil(() => count(/"msg":"configuration reloaded"/g) !== reloads, 5000, 50);
    t.is(count(/"msg":"configuration reloaded"/g), reloads + 1, `round ${round}: the reload finished`);
    t.is(count(/"change":"changed"/g), round, `round ${round}: the link was replaced`);
  }
  t.is(provider.connections, 3);
  t.notRegex(stderr, /link failed to start/);
});
