/**
 * Connection hand-off over a Unix socket (SCM_RIGHTS) to receivers that live
 * in a network namespace with no network (unshare -n), through a shared
 * temp directory.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createForward, createServer, createClient, deriveKey, nativeHandoffAvailable } from '../src/index.js';
import { sendHandoff } from '../src/activation/handoff.js';
import { cliBuilt, JUMPER } from './helpers/cli.js';
import { killAtTeardown } from './helpers/netns.js';
import { exchange, randomBytes, sha256 } from './helpers/providers.js';
import { pollUntil } from './helpers/poll.js';

const SHIM = fileURLToPath(new URL('../native/preload/libjumper_preload.so', import.meta.url));
const reason =
  process.getuid?.() !== 0 ? 'needs root for unshare -n' : !cliBuilt ? 'dist/ is not built' : !nativeHandoffAvailable() ? 'native addon unavailable' : undefined;
const handoffTest = reason ? test.skip : test;
if (reason) console.log(`skipping hand-off tests: ${reason}`);

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-handoff-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Start a process in a fresh network namespace (only lo, down). */
function inEmptyNetns(t: import('ava').ExecutionContext, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn('unshare', ['-n', ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  killAtTeardown(t, child);
  return child;
}

async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} never appeared`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A server jumper handing off to `sock`, and a client jumper in front of it: the client's port. */
async function tunnelToHandoff(t: import('ava').ExecutionContext, sock: string): Promise<number> {
  const key = await deriveKey(randomBytes(32));
  const server = createServer({ listen: '127.0.0.1:0', connect: `handoff:${sock}`, key });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port()}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  return client.port()!;
}

handoffTest('forward hand-off: `jumper accept` in unshare -n serves a connection it received, and holds the original TCP socket with its default options', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  // The command prints the peer address of its stdin (the consumer's own address if the fd is the original
  // socket) and its TCP_NODELAY and SO_KEEPALIVE: the receiver gets the socket as if it had accepted it itself.
  const show = "import socket; s=socket.socket(fileno=0); print('%s:%d nodelay=%d keepalive=%d' % (s.getpeername()[:2] + (s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))), flush=True)";
  inEmptyNetns(t, [process.execPath, JUMPER, 'accept', '--from', sock, '--exec', `python3 -c "${show}"`]);
  await waitForFile(sock);
  const fwd = createForward({ listen: '127.0.0.1:0', connect: `handoff:${sock}` });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const consumer = net.connect({ port: fwd.port()!, host: '127.0.0.1' });
  await new Promise((r) => consumer.once('connect', r));
  const line = await new Promise<string>((resolve) => consumer.once('data', (c: Buffer) => resolve(c.toString().trim())));
  t.is(line, `127.0.0.1:${consumer.localPort} nodelay=0 keepalive=0`);
  consumer.destroy();
  // Once the forwarder has recorded the stream's end: handed off is not a failure.
  await pollUntil(() => fwd.stats().active === 0, 5000);
  t.is(fwd.stats().active, 0);
  t.is(fwd.stats().failed, 0);
  t.is(fwd.stats().failures.handed_off, undefined);
  t.is(fwd.stats().total, 1);
});

handoffTest('server hand-off: decrypted bytes reach a receiver with no network, 4 MiB echoed hash-equal', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  inEmptyNetns(t, [process.execPath, JUMPER, 'accept', '--from', sock, '--exec', 'exec cat']);
  await waitForFile(sock);
  const clientPort = await tunnelToHandoff(t, sock);
  const body = randomBytes(4 * 1024 * 1024);
  const result = await exchange({ port: clientPort }, body);
  t.is(sha256(result.received), sha256(body));
});

/** An unmodified python3 http.server in unshare -n under the LD_PRELOAD shim, serving hello.txt (random content). */
async function shimmedHttpServer(t: import('ava').ExecutionContext): Promise<{ sock: string; content: string; log: () => string }> {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const content = randomBytes(16).toString('hex');
  writeFileSync(join(dir, 'hello.txt'), content);
  const daemon = spawn('unshare', ['-n', 'python3', '-m', 'http.server', '8000', '--bind', '0.0.0.0'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LD_PRELOAD: SHIM, JUMPER_PRELOAD_PORT: '8000', JUMPER_PRELOAD_SOCKET: sock },
  });
  killAtTeardown(t, daemon);
  let log = '';
  daemon.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
  await waitForFile(sock);
  return { sock, content, log: () => log };
}

/** GET /hello.txt through `port`. */
function getHello(port: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/hello.txt', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

handoffTest('an unmodified python3 http.server under the LD_PRELOAD shim in unshare -n answers a request that came through jumper forward', async (t) => {
  if (!existsSync(SHIM)) return t.fail(`${SHIM} was not built`);
  const daemon = await shimmedHttpServer(t);
  const fwd = createForward({ listen: '127.0.0.1:0', connect: `handoff:${daemon.sock}` });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const body = await getHello(fwd.port()!);
  t.is(body.status, 200);
  t.is(body.text, daemon.content);
});

handoffTest('no receiver: the connection fails with target_refused, the jumper keeps serving', async (t) => {
  const dir = tempDir(t);
  const fwd = createForward({ listen: '127.0.0.1:0', connect: `handoff:${join(dir, 'nobody.sock')}` });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const result = await exchange({ port: fwd.port()! }, Buffer.from('x'), { keepOpen: true });
  t.is(result.ending, 'reset');
  t.is(fwd.stats().failures.target_refused, 1);
});

handoffTest('forward --connect handoff: with --start is refused at construction (nothing would wait for the started receiver)', (t) => {
  t.throws(() => createForward({ listen: '127.0.0.1:0', connect: 'handoff:/tmp/jumper-test-none.sock', start: { command: 'true' } }), {
    code: 'JUMPER_ERR_INVALID_ARG',
    message: /--start does not apply to forward --connect handoff:/,
  } as never);
});

handoffTest('server hand-off under the LD_PRELOAD shim: python3 http.server gets a socket-pair end and an unspecified peer address (0.0.0.0:0), and answers', async (t) => {
  if (!existsSync(SHIM)) return t.fail(`${SHIM} was not built`);
  const daemon = await shimmedHttpServer(t);
  const clientPort = await tunnelToHandoff(t, daemon.sock);
  const body = await getHello(clientPort);
  t.is(body.status, 200);
  t.is(body.text, daemon.content);
  // http.server logs the client address it got from accept().
  await pollUntil(() => daemon.log().includes('GET /hello.txt'), 2000, 20);
  t.regex(daemon.log(), /^0\.0\.0\.0 - - .*"GET \/hello\.txt HTTP\/1\.1" 200/m);
});

/** A bare recvmsg(2) receiver (Python's socket.recv_fds): writes "nonblock=0|1" to each socket it gets, then closes it. */
const RAW_RECEIVER = `
import fcntl, os, socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen()
while True:
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
    conn.close()
    flags = fcntl.fcntl(fds[0], fcntl.F_GETFL)
    os.write(fds[0], b'nonblock=%d\\n' % (1 if flags & os.O_NONBLOCK else 0))
    os.close(fds[0])
`;
const rawReason = !nativeHandoffAvailable() ? 'native addon unavailable' : !['/usr/bin/python3', '/bin/python3'].some(existsSync) ? 'python3 is not installed' : undefined;
if (rawReason) console.log(`skipping the raw hand-off receiver test: ${rawReason}`);

(rawReason ? test.skip : test)('a plain recvmsg(2) receiver gets a blocking socket, as accept(2) gives one: forward (the TCP socket) and server (a pair end)', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const receiver = spawn('python3', ['-c', RAW_RECEIVER, sock], { stdio: ['ignore', 'ignore', 'inherit'] });
  killAtTeardown(t, receiver);
  await waitForFile(sock);
  const fwd = createForward({ listen: '127.0.0.1:0', connect: `handoff:${sock}` });
  await fwd.listen();
  t.teardown(() => fwd.close({ drainTimeoutMs: 0 }));
  const clientPort = await tunnelToHandoff(t, sock);
  for (const [label, port] of [['forward', fwd.port()!], ['server', clientPort]] as const) {
    const result = await exchange({ port }, Buffer.alloc(0), { keepOpen: true });
    t.is(result.received.toString(), 'nonblock=0\n', label);
  }
});

const emfileReason = !nativeHandoffAvailable() ? 'native addon unavailable' : !['/usr/bin/prlimit', '/bin/prlimit'].some(existsSync) ? 'prlimit (util-linux) is not installed' : undefined;
if (emfileReason) console.log(`skipping the hand-off EMFILE test: ${emfileReason}`);

(emfileReason ? test.skip : test)('a receiver out of descriptors reports EMFILE (the kernel dropped the descriptor), not a malformed hand-off', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const script = fileURLToPath(new URL('./helpers/handoff-emfile-receiver.ts', import.meta.url));
  const receiver = spawn(process.execPath, ['--import', 'tsx', script, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  killAtTeardown(t, receiver);
  const lines = createInterface({ input: receiver.stdout! })[Symbol.asyncIterator]();
  t.deepEqual(JSON.parse(String((await lines.next()).value)), { ready: true });
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const socket = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  await once(socket, 'connect');
  t.teardown(() => socket.destroy());
  await sendHandoff(sock, socket, 'target');
  const report = JSON.parse(String((await lines.next()).value)) as { code?: string; err?: string };
  t.is(report.code, 'EMFILE', JSON.stringify(report));
  t.regex(report.err ?? '', /descriptor was dropped/);
});

/** A daemon that sets TCP_NODELAY on each accepted connection (as nginx does) and writes back "PEER-ADDRESS ok|errno". */
const NODELAY_DAEMON = `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8000))
s.listen()
while True:
    c, peer = s.accept()
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = 'ok'
    except OSError as e:
        result = str(e.errno)
    c.sendall(('%s %s\\n' % (peer[0], result)).encode())
    c.close()
`;

handoffTest('server hand-off under the LD_PRELOAD shim: TCP_NODELAY on the socket-pair end succeeds (a daemon that sees an IP peer sets it)', async (t) => {
  if (!existsSync(SHIM)) return t.fail(`${SHIM} was not built`);
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const daemon = spawn('unshare', ['-n', 'python3', '-c', NODELAY_DAEMON], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, LD_PRELOAD: SHIM, JUMPER_PRELOAD_PORT: '8000', JUMPER_PRELOAD_SOCKET: sock },
  });
  killAtTeardown(t, daemon);
  await waitForFile(sock);
  const clientPort = await tunnelToHandoff(t, sock);
  const result = await exchange({ port: clientPort }, Buffer.alloc(0), { keepOpen: true });
  t.is(result.received.toString(), '0.0.0.0 ok\n');
});
