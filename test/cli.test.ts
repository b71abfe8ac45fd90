/**
 * The CLI as operators use it: child processes, exit codes, one-line errors,
 * logs, signals.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spipedTimeoutMs } from '../src/cli/spiped-command.js';
import { handshakePrimitives } from '../src/crypto/handshake-primitives.js';
import { cliBuilt, freePort, JUMPER, KEYGEN, startJumper } from './helpers/cli.js';
import { killAtTeardown } from './helpers/netns.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { pollUntil } from './helpers/poll.js';

const execFileAsync = promisify(execFile);
const cliTest = cliBuilt ? test : test.skip;
if (!cliBuilt) console.log('skipping CLI tests: dist/ is not built (run npm run build)');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run to completion; a command still running after `timeoutMs` is killed (code null). */
function run(file: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return execFileAsync(process.execPath, [file, ...args], { timeout: timeoutMs }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

cliTest('jumper-keygen writes a 0600 key, prints a fingerprint, refuses to overwrite', async (t) => {
  const file = join(tempDir(t), 'k');
  const first = await run(KEYGEN, [file]);
  t.is(first.code, 0);
  t.regex(first.stdout, /fingerprint [0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}/);
  t.is(statSync(file).mode & 0o777, 0o600);
  const again = await run(KEYGEN, [file]);
  t.is(again.code, 2);
  t.is(again.stderr.trim().split('\n').length, 1);
  t.regex(again.stderr, /already exists.*--force.*JUMPER_ERR_KEY_EXISTS/);
  t.is((await run(KEYGEN, [file, '--force'])).code, 0);
});

cliTest('jumper-keygen - writes 32 key bytes to stdout and the fingerprint to stderr', async (t) => {
  const { stdout, stderr } = await execFileAsync(process.execPath, [KEYGEN, '-'], { encoding: 'buffer' });
  t.is(stdout.length, 32);
  t.regex(stderr.toString(), /^fingerprint /);
});

cliTest('--version and --help with examples', async (t) => {
  const version = await run(JUMPER, ['--version']);
  t.regex(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  for (const cmd of ['server', 'client', 'forward']) {
    const help = await run(JUMPER, [cmd, '--help']);
    t.is(help.code, 0);
    t.regex(help.stdout, /Example/);
    t.regex(help.stdout, /--listen/);
  }
});

cliTest('bad input gives one clear line and a non-zero exit', async (t) => {
  const dir = tempDir(t);
  const cases: [string[], RegExp][] = [
    [['server', '--listen', 'nonsense', '--connect', '127.0.0.1:1', '--key', join(dir, 'k')], /bad address "nonsense".*JUMPER_ERR_BAD_ADDRESS/],
    [['server', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', join(dir, 'missing')], /does not exist.*JUMPER_ERR_KEY_FILE/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', join(dir, 'k'), '--connect-timeout', 'soon'], /duration/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', join(dir, 'k'), '--protocol', 'spiped', '--preconnect', '1'], /preconnect needs the jumper protocol.*JUMPER_ERR_INVALID_ARG/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', '--key', join(dir, 'k'), '--preconnect', 'many'], /whole number/],
  ];
  writeFileSync(join(dir, 'k'), randomBytes(32), { mode: 0o600 });
  for (const [args, pattern] of cases) {
    const r = await run(JUMPER, args);
    t.not(r.code, 0, args.join(' '));
    t.regex(r.stderr, pattern);
  }
  const busy = await freePort();
  const holder = (await import('node:net')).createServer().listen(busy, '127.0.0.1');
  t.teardown(() => holder.close());
  await new Promise((r) => holder.once('listening', r));
  const r = await run(JUMPER, ['forward', '--listen', `127.0.0.1:${busy}`, '--connect', '127.0.0.1:1']);
  t.is(r.code, 1);
  t.is(r.stderr.trim().split('\n').length, 1);
  t.regex(r.stderr, /EADDRINUSE.*JUMPER_ERR_LISTEN/);
});

cliTest('server and client processes carry a stream, log start-up and per-connection lines, and exit 0 on SIGTERM', async (t) => {
  const dir = tempDir(t);
  const keyFile = join(dir, 'k');
  await run(KEYGEN, [keyFile]);
  const provider = await startEchoProvider(t);
  const [serverPort, clientPort] = [await freePort(), await freePort()];
  const server = startJumper(t, ['server', '-l', `127.0.0.1:${serverPort}`, '-c', provider.address, '-k', keyFile]);
  const client = startJumper(t, ['client', '-l', `127.0.0.1:${clientPort}`, '-c', `127.0.0.1:${serverPort}`, '-k', keyFile]);
  const started = await server.waitFor((l) => l.msg === 'server jumper listening');
  const clientStarted = await client.waitFor((l) => l.msg === 'client jumper listening');
  t.regex(String((started.keys as string[])[0]), /^[0-9a-f]{4}-/);
  // The start-up line names the handshake primitives in use, as this process would choose them.
  t.is(started.crypto, handshakePrimitives().name);
  t.is(clientStarted.crypto, handshakePrimitives().name);
  // Key bytes never reach the logs, in any common encoding.
  const secret = readFileSync(keyFile);
  for (const text of [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')]) {
    t.false(server.stderr().includes(text));
    t.false(client.stderr().includes(text));
  }

  const body = randomBytes(1024 * 1024);
  const result = await exchange({ port: clientPort }, body);
  t.is(sha256(result.received), sha256(body));
  const line = await server.waitFor((l) => l.msg === 'connection closed');
  t.is(line.reason, 'done');
  t.is(line.bytesUp, body.length);
  t.is(line.bytesDown, body.length);
  t.is(typeof line.durationMs, 'number');
  t.true(typeof line.peer === 'string' && (line.peer as string).startsWith('127.0.0.1:'));

  // SIGHUP re-reads the key; a rotated key then fails until the client gets it too.
  await run(KEYGEN, [keyFile, '--force']);
  server.child.kill('SIGHUP');
  await server.waitFor((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('SIGHUP: key reloaded'));
  const rejected = await exchange({ port: clientPort }, Buffer.from('x'));
  t.is(rejected.ending, 'reset');
  await server.waitFor((l) => l.reason === 'bad_key');
  client.child.kill('SIGHUP');
  await client.waitFor((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('SIGHUP: key reloaded'));
  const after = await exchange({ port: clientPort }, Buffer.from('rotated'));
  t.is(after.received.toString(), 'rotated');

  server.child.kill('SIGTERM');
  client.child.kill('SIGTERM');
  t.deepEqual(await server.exited, { code: 0, signal: null });
  t.deepEqual(await client.exited, { code: 0, signal: null });
  t.false(server.stderr().includes('error while stopping'));
});

cliTest('SIGTERM lets an open stream finish before exiting 0', async (t) => {
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const fwd = startJumper(t, ['forward', '-l', `127.0.0.1:${port}`, '-c', provider.address, '--drain-timeout', '10s']);
  await fwd.waitFor((l) => l.msg === 'forward jumper listening');
  const net = await import('node:net');
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => socket.once('connect', r));
  socket.write('before');
  // The stream is open end to end (the provider has the bytes) before SIGTERM.
  await pollUntil(() => Buffer.concat(provider.received[0] ?? []).toString() === 'before', 5000);
  t.is(Buffer.concat(provider.received[0] ?? []).toString(), 'before');
  fwd.child.kill('SIGTERM');
  await fwd.waitFor((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('stopping'));
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end('+after');
  await new Promise((r) => socket.once('end', r));
  t.is(Buffer.concat(chunks).toString(), 'before+after');
  t.deepEqual(await fwd.exited, { code: 0, signal: null });
});

cliTest('--connect-netns with a host name or a bad designator is refused at start in one line, not on every stream', async (t) => {
  // Refused at once; a jumper that starts listening instead is killed after 10 s.
  const byName = await run(JUMPER, ['forward', '--listen', '127.0.0.1:0', '--connect', 'db-host:8025', '--connect-netns', 'pid:1'], 10_000);
  t.is(byName.code, 2);
  t.is(byName.stderr.trim().split('\n').length, 1, byName.stderr);
  t.regex(byName.stderr, /given by address, not name: "db-host"/);
  const badNetns = await run(JUMPER, ['forward', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:8025', '--connect-netns', 'pid:0'], 10_000);
  t.is(badNetns.code, 2);
  t.is(badNetns.stderr.trim().split('\n').length, 1, badNetns.stderr);
  t.regex(badNetns.stderr, /bad network namespace "pid:0"/);
});

cliTest('options typed where they would have no effect, or a zero timeout, are refused at start with exit status 2', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'k'), randomBytes(32), { mode: 0o600 });
  const key = ['--key', join(dir, 'k')];
  const fwd = ['forward', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1'];
  const cases: [string[], RegExp][] = [
    [[...fwd, '--strategy', 'random'], /--strategy applies only with several --connect or --discover/],
    [[...fwd, '--eject-after', '2'], /--eject-after applies only with several --connect/],
    [[...fwd, '--connect', '127.0.0.1:2', '--health-interval', '10ms'], /--health-interval.*at least 100ms/],
    [[...fwd, '--connect-timeout', '0'], /--connect-timeout.*at least 1ms/],
    [['forward', '--listen', '127.0.0.1:0', '--connect', 'exec:cat', '--connect-timeout', '2s'], /--connect-timeout applies only with a --connect address that is dialled/],
    [['forward', '--listen', '127.0.0.1:0', '--connect', 'handoff:/run/h.sock', '--connect-timeout', '2s'], /--connect-timeout applies only with a --connect address that is dialled/],
    [[...fwd, '--start-timeout', '3s'], /--start-timeout applies only with --start/],
    [[...fwd, '--lease-ttl', '5s'], /--lease-ttl applies only with --register/],
    [[...fwd, '--deregister-delay', '0'], /--deregister-delay applies only with --register/],
    [[...fwd, '--listen-mode', '0600'], /--listen-mode\/--listen-owner apply to a Unix socket listener/],
    [['forward', '--listen', 'systemd', '--connect', '127.0.0.1:1', '--listen-mode', '0600'], /inherited socket.*SocketMode=/],
    [['forward', '--listen', join(dir, 'in.sock'), '--connect', '127.0.0.1:1', '--allow', '10.0.0.0/8'], /a Unix socket has no peer address/],
    [[...fwd, '--group', 'nogroup'], /--group needs --user/],
    [[...fwd, '--no-such-option'], /unknown option/],
    [['server', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', ...key, '--handshake-timeout', '0'], /--handshake-timeout.*at least 1ms/],
    [['server', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', ...key, '--protocol', 'spiped', '--max-handshakes', '10'], /--max-handshakes applies only with the jumper protocol/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', ...key, '--preconnect', '0', '--preconnect-idle', '1s'], /--preconnect-idle applies only with --preconnect/],
    [['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1', ...key, '--max-handshakes', '0'], /--max-handshakes.*expected a positive integer/],
    [['pipe', '--connect', '127.0.0.1:1', ...key, '--protocol', 'spiped', '--no-pfs', '--require-pfs'], /--no-pfs and --require-pfs contradict/],
    [['pipe', '--connect', '127.0.0.1:1', ...key, '--no-pfs'], /apply to --protocol spiped/],
    [['pipe', '--connect', '127.0.0.1:1', ...key, '--connect-timeout', '0'], /at least 1ms/],
  ];
  for (const [args, pattern] of cases) {
    // A case that listens instead of refusing is killed after 10 s and fails here, with its own message.
    const r = await run(JUMPER, args, 10_000);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, pattern, args.join(' '));
  }
});

cliTest('a start-up failure after listening (admin address in use) removes the Unix socket file it bound', async (t) => {
  const dir = tempDir(t);
  const busy = await freePort();
  const holder = (await import('node:net')).createServer().listen(busy, '127.0.0.1');
  t.teardown(() => holder.close());
  await new Promise((r) => holder.once('listening', r));
  const path = join(dir, 'in.sock');
  const r = await run(JUMPER, ['forward', '--listen', path, '--connect', '127.0.0.1:1', '--admin', `127.0.0.1:${busy}`]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /admin.*EADDRINUSE/);
  t.throws(() => statSync(path), { code: 'ENOENT' });
});

cliTest('jumper pipe removes its private socket directory when start-up fails and when a signal stops it', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'k'), randomBytes(32), { mode: 0o600 });
  const pipeDirs = () => new Set(readdirSync(dir).filter((n) => n.startsWith('jumper-pipe-')));
  // TMPDIR points the private directory into ours, where it can be counted.
  const env = { ...process.env, TMPDIR: dir };
  const bad = await execFileAsync(process.execPath, [JUMPER, 'pipe', '--connect', 'no-port-here', '--key', join(dir, 'k')], { env }).catch((e: { code: number; stderr: string }) => e);
  t.is((bad as { code: number }).code, 2);
  t.deepEqual([...pipeDirs()], []);
  // A server that accepts and never answers: the pipe waits in its handshake until SIGTERM.
  const silent = (await import('node:net')).createServer(() => undefined).listen(0, '127.0.0.1');
  t.teardown(() => silent.close());
  await new Promise((r) => silent.once('listening', r));
  const child = spawn(process.execPath, [JUMPER, 'pipe', '--connect', `127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}`, '--key', join(dir, 'k')], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  killAtTeardown(t, child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await within(new Promise((r) => silent.once('connection', r)), 10_000, 'the pipe never connected');
  t.is(pipeDirs().size, 1);
  child.kill('SIGTERM');
  t.is(await within(exited, 10_000, 'the pipe did not exit on SIGTERM'), 1);
  t.deepEqual([...pipeDirs()], []);
});

/** `promise`, or a rejection naming what did not happen within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} (${ms} ms)`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

cliTest('jumper spiped: -o 0 means the 5 s default as in spiped, fractions are taken, and the -p pid file is removed at exit', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'k'), randomBytes(32), { mode: 0o600 });
  const provider = await startEchoProvider(t);
  const [serverPort, port] = [await freePort(), await freePort()];
  const pidFile = join(dir, 'spiped.pid');
  // Both ends with -o 0: a stream only gets through if 0 did not become a 0 ms handshake timeout.
  const server = startJumper(t, ['spiped', '-d', '-s', `[127.0.0.1]:${serverPort}`, '-t', provider.address, '-k', join(dir, 'k'), '-o', '0']);
  await server.waitFor((l) => l.msg === 'server jumper listening');
  const cli = startJumper(t, ['spiped', '-e', '-s', `[127.0.0.1]:${port}`, '-t', `[127.0.0.1]:${serverPort}`, '-k', join(dir, 'k'), '-o', '0', '-p', pidFile, '-F']);
  await cli.waitFor((l) => l.msg === 'client jumper listening');
  t.is(readFileSync(pidFile, 'utf8'), `${cli.child.pid}\n`);
  const body = randomBytes(64 * 1024);
  const echoed = await exchange({ port }, body);
  t.is(sha256(echoed.received), sha256(body));
  cli.child.kill('SIGTERM');
  t.is((await cli.exited).code, 0);
  t.throws(() => statSync(pidFile), { code: 'ENOENT' });
  // -o 0.5 against a peer that accepts and never answers: the handshake gives up after half a second, not 5.
  const silent = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => silent.close());
  const silentPort = (silent.address() as net.AddressInfo).port;
  const halfPort = await freePort();
  const half = startJumper(t, ['spiped', '-e', '-s', `[127.0.0.1]:${halfPort}`, '-t', `[127.0.0.1]:${silentPort}`, '-k', join(dir, 'k'), '-o', '0.5']);
  await half.waitFor((l) => l.msg === 'client jumper listening');
  const waiting = net.connect({ port: halfPort, host: '127.0.0.1' }).on('error', () => {});
  t.teardown(() => waiting.destroy());
  const timedOut = await half.waitFor((l) => l.reason === 'handshake_timeout', 4000);
  t.true(Number(timedOut.durationMs) >= 400, `gave up after ${String(timedOut.durationMs)} ms`);
  half.child.kill('SIGTERM');
  t.is((await half.exited).code, 0);
  // The values themselves: -o 0 is spiped's 5 s, fractions are milliseconds, a tiny one still a timer.
  t.is(spipedTimeoutMs('0'), 5000);
  t.is(spipedTimeoutMs('0.5'), 500);
  t.is(spipedTimeoutMs('0.0001'), 1);
  const bad = await run(JUMPER, ['spiped', '-e', '-s', '[127.0.0.1]:1', '-t', '[127.0.0.1]:1', '-k', join(dir, 'k'), '-o', 'soon']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /expected seconds/);
});
