/**
 * The native addon and the namespace socket layer, against REAL network
 * namespaces (see helpers/netns.ts). Needs root and iproute2; skipped with
 * the reason printed otherwise.
 *
 * Traffic stays on loopback inside test namespaces, or on veth pairs between
 * them; the namespaces are deleted after every test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { Address } from '../src/addr/address.js';
import type { JumperError } from '../src/errors.js';
import { loadNative, nativeAvailable } from '../src/native/binding.js';
import { connectInNetns, listenServerInNetns, openListenerInNetns } from '../src/netns/sockets.js';
import { createNetns, createVethPair, netnsUnsupportedReason, type TestNetns } from './helpers/netns.js';

const execFileAsync = promisify(execFile);

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOCKETS_MODULE = new URL('../src/netns/sockets.ts', import.meta.url).href;
const BINDING_MODULE = new URL('../src/native/binding.ts', import.meta.url).href;

const KIB = 1024;
const MIB = KIB * KIB;
const CLOSED_PORT = 1; // nothing listens on tcpmux in a fresh namespace
const SHORT_TIMEOUT_MS = 300;
const NOBODY = '65534';
const THREAD_SETTLE_MS = 2000;
const POLL_INTERVAL_MS = 20;

// ---------------------------------------------------------------- gating --

const unsupported = netnsUnsupportedReason() ?? (nativeAvailable() ? undefined : nativeUnavailableReason());
if (unsupported) console.log(`native.test.ts: skipping namespace tests: ${unsupported}`);
const nsTest = unsupported ? test.skip : test;
const nsSerial = unsupported ? test.serial.skip : test.serial;

function nativeUnavailableReason(): string {
  try {
    loadNative();
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

// ------------------------------------------------------ helper programs --

/** Decode the '@name' convention for abstract sockets (argv cannot carry NUL). */
const DECODE_TARGET = `
const target = JSON.parse(process.argv[1]);
if (target.path && target.path.startsWith('@')) target.path = '\\0' + target.path.slice(1);
`;

/** Client run inside a namespace: sends N random bytes, half-closes, reports hashes. */
const CLIENT = `${DECODE_TARGET}
const net = require('net'), crypto = require('crypto');
const hash = (b) => crypto.createHash('sha256').update(b).digest('hex');
const payload = crypto.randomBytes(Number(process.argv[2]));
const chunks = [];
let local = null;
const s = net.connect(target, () => { local = s.localAddress ?? null; s.end(payload); });
s.on('data', (d) => chunks.push(d));
s.on('end', () => {
  const got = Buffer.concat(chunks);
  console.log(JSON.stringify({ sent: hash(payload), received: hash(got), bytes: got.length, local }));
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); });
`;

/**
 * Provider run inside a namespace. mode 'echo': echoes, ends after the peer
 * ends. mode 'greet': sends a greeting and half-closes first, then reports
 * what the peer sent afterwards. Reports every peer address.
 */
const PROVIDER = `${DECODE_TARGET}
const net = require('net');
const mode = process.argv[2];
const srv = net.createServer({ allowHalfOpen: true }, (s) => {
  console.log(JSON.stringify({ peer: s.remoteAddress ?? null }));
  s.on('error', () => {});
  if (mode === 'echo') {
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  } else {
    s.end('hello from provider');
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d) => { got += d; });
    s.on('end', () => console.log(JSON.stringify({ got })));
  }
});
srv.listen(target, () => {
  const a = srv.address();
  console.log(JSON.stringify({ ready: true, port: a && typeof a === 'object' ? a.port : null }));
});
`;

interface ClientReport {
  sent: string;
  received: string;
  bytes: number;
  local: string | null;
  error?: string;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function targetArg(address: { host: string; port: number } | { path: string }): string {
  return JSON.stringify(address);
}

async function runClientIn(ns: TestNetns, target: { host: string; port: number } | { path: string }, bytes: number): Promise<ClientReport> {
  const { stdout } = await ns.exec('node', ['-e', CLIENT, targetArg(target), String(bytes)]);
  return JSON.parse(stdout.trim()) as ClientReport;
}

async function startProvider(ns: TestNetns, target: { host: string; port: number } | { path: string }, mode: 'echo' | 'greet') {
  const provider = ns.spawn('node', ['-e', PROVIDER, targetArg(target), mode]);
  const ready = await provider.next<{ ready: boolean; port: number | null }>();
  return { provider, port: ready.port };
}

/** Echo server (ours, listening inside `ns`) that records a hash of everything received per connection. */
async function echoServerIn(t: ExecutionContext, ns: TestNetns, address: Address) {
  const received: Array<{ hash: string; peer: string | undefined }> = [];
  const done: Array<() => void> = [];
  const server = await listenServerInNetns(ns.name, address, { server: { allowHalfOpen: true } }, (socket) => {
    const hash = createHash('sha256');
    const peer = socket.remoteAddress;
    socket.on('data', (d: Buffer) => {
      hash.update(d);
      socket.write(d);
    });
    socket.on('end', () => {
      received.push({ hash: hash.digest('hex'), peer });
      socket.end();
      done.shift()?.();
    });
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, received };
}

/** Send `payload`, half-close, collect everything until the peer ends. */
function roundTrip(socket: net.Socket, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.end(payload);
  });
}

function uniqueSocketPath(label: string): string {
  return join(tmpdir(), `jt-${randomBytes(4).toString('hex')}-${label}.sock`);
}

// ----------------------------------------------------------- listening --

nsTest('listen inside a fresh namespace: clients there reach it at 127.0.0.1', async (t) => {
  const ns = await createNetns(t, 'consumer');
  const { server, received } = await echoServerIn(t, ns, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  const bound = server.address() as net.AddressInfo;
  t.is(bound.address, '127.0.0.1');
  t.true(bound.port > 0);

  const report = await runClientIn(ns, { host: '127.0.0.1', port: bound.port }, 256 * KIB);
  t.is(report.error, undefined);
  t.is(report.bytes, 256 * KIB);
  t.is(report.received, report.sent, 'echo came back intact');
  t.is(received[0]?.hash, report.sent, 'the server received exactly what the client sent');
  t.is(received[0]?.peer, '127.0.0.1');
  t.is(report.local, '127.0.0.1');
});

nsTest('listen on IPv6 ::1 inside a namespace', async (t) => {
  const ns = await createNetns(t, 'v6');
  const { server, received } = await echoServerIn(t, ns, { kind: 'tcp', host: '::1', port: 0 });
  const bound = server.address() as net.AddressInfo;
  t.is(bound.address, '::1');
  t.is(bound.family, 'IPv6');

  const report = await runClientIn(ns, { host: '::1', port: bound.port }, 64 * KIB);
  t.is(report.received, report.sent);
  t.is(received[0]?.hash, report.sent);
  t.is(received[0]?.peer, '::1');
});

nsTest('listen on a Unix socket path from inside a namespace; the file is removed on close', async (t) => {
  const ns = await createNetns(t, 'unix');
  const path = uniqueSocketPath('listen');
  const { server, received } = await echoServerIn(t, ns, { kind: 'unix', path });
  t.true(existsSync(path));

  const report = await runClientIn(ns, { path }, 128 * KIB);
  t.is(report.received, report.sent);
  t.is(received[0]?.hash, report.sent);

  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.false(existsSync(path), 'socket file removed when the server closed');
});

nsTest('an abstract Unix socket opened in a namespace is visible only there', async (t) => {
  const ns = await createNetns(t, 'abstract');
  const name = `jt-${randomBytes(6).toString('hex')}`;
  const { received } = await echoServerIn(t, ns, { kind: 'unix', path: `\0${name}` });

  const report = await runClientIn(ns, { path: `@${name}` }, 16 * KIB);
  t.is(report.received, report.sent, 'reachable from inside the namespace');
  t.is(received[0]?.hash, report.sent);

  const fromHere = await new Promise<string>((resolve) => {
    const s = net.connect({ path: `\0${name}` }, () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.is(fromHere, 'ECONNREFUSED', 'not reachable from the jumper process namespace');

  const socket = await connectInNetns(ns.name, { kind: 'unix', path: `\0${name}` });
  const payload = randomBytes(4 * KIB);
  t.is(sha256(await roundTrip(socket, payload)), sha256(payload), 'connectInNetns reaches it');
});

nsTest('listening twice on the same port in a namespace is a ListenError (EADDRINUSE at bind)', async (t) => {
  const ns = await createNetns(t, 'inuse');
  const fd = await openListenerInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as net.AddressInfo;

  const err = await t.throwsAsync<JumperError>(openListenerInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port }), {
    code: 'JUMPER_ERR_LISTEN',
  });
  t.is(err?.errno, 'EADDRINUSE');
  t.is(err?.syscall, 'bind');
});

nsTest('listening on an address the namespace does not have is a ListenError (EADDRNOTAVAIL)', async (t) => {
  const ns = await createNetns(t, 'noaddr');
  const err = await t.throwsAsync<JumperError>(openListenerInNetns(ns.name, { kind: 'tcp', host: '10.231.255.254', port: 0 }), {
    code: 'JUMPER_ERR_LISTEN',
  });
  t.is(err?.errno, 'EADDRNOTAVAIL');
});

// ---------------------------------------------------------- connecting --

nsTest('connect from inside a namespace reaches a provider bound to its own 127.0.0.1', async (t) => {
  const ns = await createNetns(t, 'provider');
  const { provider, port } = await startProvider(ns, { host: '127.0.0.1', port: 0 }, 'echo');
  t.truthy(port);

  const socket = await connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: port ?? 0 });
  t.is(socket.remoteAddress, '127.0.0.1');
  t.is(socket.remotePort, port ?? 0);
  const peer = await provider.next<{ peer: string }>();
  t.is(peer.peer, '127.0.0.1', 'the provider sees a loopback peer');

  const payload = randomBytes(MIB);
  const echoed = await roundTrip(socket, payload);
  t.is(echoed.length, payload.length);
  t.is(sha256(echoed), sha256(payload), 'bytes survive the round trip; our half-close let the provider finish');

  // 'localhost' is the one name accepted: loopback in every namespace.
  const viaName = await connectInNetns(ns.name, { kind: 'tcp', host: 'localhost', port: port ?? 0 });
  t.is(viaName.remoteAddress, '127.0.0.1');
  t.is((await roundTrip(viaName, Buffer.from('ping'))).toString(), 'ping');
});

nsTest('half-close from the provider: it ends first, we keep writing (allowHalfOpen)', async (t) => {
  const ns = await createNetns(t, 'halfclose');
  const { provider, port } = await startProvider(ns, { host: '127.0.0.1', port: 0 }, 'greet');

  const socket = await connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: port ?? 0 }, { allowHalfOpen: true });
  await provider.next(); // peer report
  socket.setEncoding('utf8');
  let greeting = '';
  socket.on('data', (d: string) => {
    greeting += d;
  });
  await new Promise<void>((resolve) => socket.once('end', resolve));
  t.is(greeting, 'hello from provider');
  t.true(socket.writable, 'our side stays writable after the peer ended');

  socket.end('reply after your EOF');
  const report = await provider.next<{ got: string }>();
  t.is(report.got, 'reply after your EOF');
});

nsTest('connect over IPv6 ::1 inside a namespace', async (t) => {
  const ns = await createNetns(t, 'v6conn');
  const { provider, port } = await startProvider(ns, { host: '::1', port: 0 }, 'echo');
  const socket = await connectInNetns(ns.name, { kind: 'tcp', host: '::1', port: port ?? 0 });
  t.is((await provider.next<{ peer: string }>()).peer, '::1');
  const payload = randomBytes(64 * KIB);
  t.is(sha256(await roundTrip(socket, payload)), sha256(payload));
});

nsTest('connect to a Unix socket path through a namespace', async (t) => {
  const ns = await createNetns(t, 'unixconn');
  const path = uniqueSocketPath('provider');
  // Registered before the provider starts, so it runs after the provider is killed.
  t.teardown(() => rmSync(path, { force: true }));
  const { provider } = await startProvider(ns, { path }, 'echo');
  const socket = await connectInNetns(ns.name, { kind: 'unix', path });
  await provider.next();
  const payload = randomBytes(256 * KIB);
  t.is(sha256(await roundTrip(socket, payload)), sha256(payload));
});

nsTest('connect across a veth pair between two test namespaces', async (t) => {
  const nsA = await createNetns(t, 'left');
  const nsB = await createNetns(t, 'right');
  const veth = await createVethPair(t, nsA, nsB);
  const { provider, port } = await startProvider(nsB, { host: veth.b.address, port: 0 }, 'echo');

  const socket = await connectInNetns(nsA.name, { kind: 'tcp', host: veth.b.address, port: port ?? 0 });
  t.is((await provider.next<{ peer: string }>()).peer, veth.a.address, 'traffic left from namespace A');
  const payload = randomBytes(128 * KIB);
  t.is(sha256(await roundTrip(socket, payload)), sha256(payload));
});

// -------------------------------------------------------------- errors --

nsTest('a closed port is ConnectRefusedError', async (t) => {
  const ns = await createNetns(t, 'refused');
  const err = await t.throwsAsync<JumperError>(connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: CLOSED_PORT }), {
    code: 'JUMPER_ERR_CONNECT_REFUSED',
  });
  t.is(err?.errno, 'ECONNREFUSED');
  t.is(err?.syscall, 'connect');
  t.regex(err?.message ?? '', new RegExp(ns.name));
});

nsTest('a missing Unix socket path is ConnectRefusedError (ENOENT), as for the plain dialer: nobody listens there', async (t) => {
  const ns = await createNetns(t, 'nosock');
  const err = await t.throwsAsync<JumperError>(connectInNetns(ns.name, { kind: 'unix', path: uniqueSocketPath('absent') }), {
    code: 'JUMPER_ERR_CONNECT_REFUSED',
  });
  t.is(err?.reason, 'connect_refused');
  t.is(err?.errno, 'ENOENT');
  t.is(err?.syscall, 'connect');
});

nsTest('an unanswered connect is ConnectTimeoutError after timeoutMs', async (t) => {
  const nsA = await createNetns(t, 'tmo-a');
  const nsB = await createNetns(t, 'tmo-b');
  const veth = await createVethPair(t, nsA, nsB);
  // Take B's address away: A's ARP requests go unanswered, the SYN never leaves.
  await execFileAsync('ip', ['-n', nsB.name, 'addr', 'flush', 'dev', veth.b.ifname]);

  const started = Date.now();
  const err = await t.throwsAsync<JumperError>(
    connectInNetns(nsA.name, { kind: 'tcp', host: veth.b.address, port: 80 }, { timeoutMs: SHORT_TIMEOUT_MS }),
    { code: 'JUMPER_ERR_CONNECT_TIMEOUT' },
  );
  const elapsed = Date.now() - started;
  t.is(err?.errno, 'ETIMEDOUT');
  t.true(elapsed >= SHORT_TIMEOUT_MS - POLL_INTERVAL_MS, `took ${elapsed} ms`);
  t.true(elapsed < SHORT_TIMEOUT_MS + 5000, `took ${elapsed} ms (the kernel's own SYN timeout is minutes)`);
});

nsTest('a namespace that does not exist is NamespaceError (open ENOENT)', async (t) => {
  const name = `jt-${randomBytes(4).toString('hex')}-missing`;
  const err = await t.throwsAsync<JumperError>(connectInNetns(name, { kind: 'tcp', host: '127.0.0.1', port: CLOSED_PORT }), {
    code: 'JUMPER_ERR_NETNS',
  });
  t.is(err?.errno, 'ENOENT');
  t.is(err?.syscall, 'open');
  t.is(err?.message, `no such network namespace: ${name} (/var/run/netns/${name})`);

  await t.throwsAsync(openListenerInNetns('/nonexistent/ns/net', { kind: 'tcp', host: '127.0.0.1', port: 0 }), {
    code: 'JUMPER_ERR_NETNS',
  });
});

nsTest('a file that is not a network namespace is NamespaceError (setns EINVAL)', async (t) => {
  const err = await t.throwsAsync<JumperError>(connectInNetns('/proc/self/ns/uts', { kind: 'tcp', host: '127.0.0.1', port: CLOSED_PORT }), {
    code: 'JUMPER_ERR_NETNS',
  });
  t.is(err?.errno, 'EINVAL');
  t.is(err?.syscall, 'setns');
  t.regex(err?.message ?? '', /not a network namespace/);
});

nsTest('pid:N designators enter the namespace of a process', async (t) => {
  const ns = await createNetns(t, 'bypid');
  const { provider, port } = await startProvider(ns, { host: '127.0.0.1', port: 0 }, 'echo');
  // `ip netns exec` execs node in place, so the child's pid is the provider's.
  const pid = provider.child.pid;
  t.truthy(pid);
  const socket = await connectInNetns(`pid:${pid}`, { kind: 'tcp', host: '127.0.0.1', port: port ?? 0 });
  t.is((await roundTrip(socket, Buffer.from('by pid'))).toString(), 'by pid');
});

nsTest('host names are refused inside a namespace (they would resolve in ours)', async (t) => {
  const ns = await createNetns(t, 'names');
  const err = await t.throwsAsync<JumperError>(connectInNetns(ns.name, { kind: 'tcp', host: 'example.invalid', port: 80 }), {
    code: 'JUMPER_ERR_INVALID_ARG',
  });
  t.regex(err?.message ?? '', /targets inside a network namespace are given by address/);
  await t.throwsAsync(openListenerInNetns('bad/name', { kind: 'tcp', host: '127.0.0.1', port: 0 }), {
    code: 'JUMPER_ERR_INVALID_ARG',
  });
  await t.throwsAsync(connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: 1 }, { timeoutMs: 0 }), {
    code: 'JUMPER_ERR_INVALID_ARG',
  });
  await t.throwsAsync(connectInNetns(ns.name, { kind: 'unix', path: `/${'x'.repeat(200)}` }), {
    code: 'JUMPER_ERR_INVALID_ARG',
  });
});

nsTest('the binding validates its arguments with TypeError/RangeError', (t) => {
  const native = loadNative() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const listen = native['listenInNetns'];
  const connect = native['connectInNetns'];
  if (!listen || !connect) return t.fail('binding exports missing');
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', '127.0.0.1', 0), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', '127.0.0.1', 0, 1), { instanceOf: TypeError, message: /expected 6 arguments/ });
  t.throws(() => listen('/proc/self/ns/net', 'unix', '/tmp/x.sock', 0, 1, 0o1000), { instanceOf: RangeError, message: /umask/ });
  t.throws(() => listen('/proc/self/ns/net', 'unix', '/tmp/x.sock', 0, 1, -2), { instanceOf: RangeError, message: /umask/ });
  t.throws(() => listen(42, 'ipv4', '127.0.0.1', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipx', '127.0.0.1', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', 'not-an-ip', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv6', '127.0.0.1', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', '127.0.0.1', '80', 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', '127.0.0.1', 65536, 1, -1), { instanceOf: RangeError });
  t.throws(() => listen('/proc/self/ns/net', 'ipv4', '127.0.0.1', 1.5, 1, -1), { instanceOf: RangeError });
  t.throws(() => listen('', 'ipv4', '127.0.0.1', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net\0', 'ipv4', '127.0.0.1', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'unix', '', 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => listen('/proc/self/ns/net', 'unix', `/${'x'.repeat(120)}`, 0, 1, -1), { instanceOf: TypeError });
  t.throws(() => connect('/proc/self/ns/net', 'ipv4', '127.0.0.1', 1, 0), { instanceOf: RangeError });
  t.throws(() => connect('/proc/self/ns/net', 'ipv4', '127.0.0.1', 1, Number.NaN), { instanceOf: RangeError });
});

// ------------------------------------------- processes without the addon --

/** Run `body` (an ES module snippet) in a child node with tsx; it prints one JSON line. */
async function runChild(body: string, options: { env?: NodeJS.ProcessEnv; prefix?: string[] } = {}) {
  const prefix = options.prefix ?? [];
  const [cmd, ...args] = [...prefix, process.execPath, '--import', 'tsx', '--input-type=module', '-e', body];
  const { stdout } = await execFileAsync(cmd ?? process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

const REPORT_ERROR = `
const report = (err) => console.log(JSON.stringify({
  name: err?.name, code: err?.code, errno: err?.errno, syscall: err?.syscall, message: err?.message,
}));
`;

function hasSetpriv(): boolean {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

nsTest('without CAP_SYS_ADMIN entering a namespace is PermissionError', async (t) => {
  if (!hasSetpriv()) {
    t.log('setpriv (util-linux) is missing: cannot drop privileges in a child; not checked');
    t.pass();
    return;
  }
  const ns = await createNetns(t, 'perm');
  const result = await runChild(
    `${REPORT_ERROR}
const { connectInNetns } = await import(${JSON.stringify(SOCKETS_MODULE)});
try { await connectInNetns(${JSON.stringify(ns.name)}, { kind: 'tcp', host: '127.0.0.1', port: 1 }); report({}); }
catch (err) { report(err); }`,
    { prefix: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] },
  );
  t.log(`as uid ${NOBODY}: ${String(result['syscall'])} ${String(result['errno'])}: ${String(result['message'])}`);
  t.is(result['name'], 'PermissionError');
  t.is(result['code'], 'JUMPER_ERR_PERMISSION');
  t.true(result['errno'] === 'EPERM' || result['errno'] === 'EACCES', String(result['errno']));
  t.true(result['syscall'] === 'open' || result['syscall'] === 'setns', String(result['syscall']));
  t.regex(String(result['message']), /CAP_SYS_ADMIN/);
});

test('JUMPER_NO_NATIVE=1 makes namespace sockets fail with NativeUnavailableError', async (t) => {
  const result = await runChild(
    `${REPORT_ERROR}
const { connectInNetns } = await import(${JSON.stringify(SOCKETS_MODULE)});
const { nativeAvailable, loadNative } = await import(${JSON.stringify(BINDING_MODULE)});
const available = nativeAvailable();
let loadError;
try { loadNative(); } catch (err) { loadError = err.code; }
try { await connectInNetns('anything', { kind: 'tcp', host: '127.0.0.1', port: 1 }); report({}); }
catch (err) { console.log(JSON.stringify({ available, loadError, name: err.name, code: err.code, message: err.message })); }`,
    { env: { JUMPER_NO_NATIVE: '1' } },
  );
  t.false(result['available']);
  t.is(result['loadError'], 'JUMPER_ERR_NATIVE_UNAVAILABLE');
  t.is(result['name'], 'NativeUnavailableError');
  t.is(result['code'], 'JUMPER_ERR_NATIVE_UNAVAILABLE');
  t.regex(String(result['message']), /JUMPER_NO_NATIVE=1/);
  t.false(String(result['message']).includes('\n'), 'one line');
});

// ------------------------------------------- namespace and fd hygiene --

function threadNamespaces(): Map<string, string> {
  const result = new Map<string, string>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      result.set(tid, readlinkSync(`/proc/self/task/${tid}/ns/net`));
    } catch {
      // the thread exited between readdir and readlink
    }
  }
  return result;
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  return true;
}

nsSerial('no JS or libuv thread ever changes namespace, and failures leak no descriptors', async (t) => {
  const original = readlinkSync('/proc/self/ns/net');
  const mainThread = String(process.pid);
  const ns = await createNetns(t, 'hygiene');
  t.not(`net:[${statSync(ns.path).ino}]`, original, 'the test namespace differs from ours');

  const { server } = await echoServerIn(t, ns, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  const { port } = server.address() as net.AddressInfo;
  const fdsBefore = openFdCount();

  // Many operations at once, successes and each kind of failure.
  const ROUNDS = 10;
  const operations: Array<Promise<unknown>> = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    operations.push(
      connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port }).then((s) => roundTrip(s, Buffer.from(`n${i}`))),
      connectInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port: CLOSED_PORT }).catch(() => 'refused'),
      openListenerInNetns(ns.name, { kind: 'tcp', host: '127.0.0.1', port }).catch(() => 'in use'),
      connectInNetns('/proc/self/ns/uts', { kind: 'tcp', host: '127.0.0.1', port }).catch(() => 'not netns'),
      connectInNetns(`jt-absent-${i}`, { kind: 'tcp', host: '127.0.0.1', port }).catch(() => 'absent'),
    );
    // Meanwhile the libuv pool is busy (fs, dns, crypto run there).
    operations.push(new Promise((resolve) => randomBytes(KIB, resolve)));
  }
  const results = await Promise.all(operations);
  t.is(results.filter((r) => Buffer.isBuffer(r)).length, ROUNDS, 'all successful round trips');

  t.is(readlinkSync(`/proc/self/task/${mainThread}/ns/net`), original, 'the JS thread is still in our namespace');
  // The dedicated threads settle the promise just before they exit; give them a moment.
  const settled = await waitFor(() => [...threadNamespaces().values()].every((n) => n === original), THREAD_SETTLE_MS);
  const strays = [...threadNamespaces()].filter(([, n]) => n !== original);
  t.true(settled, `threads in a foreign namespace: ${JSON.stringify(strays)}`);
  t.is(readlinkSync('/proc/self/ns/net'), original);

  // Successful sockets were closed by roundTrip's end; wait for the closes to land.
  const fdsSettled = await waitFor(() => openFdCount() <= fdsBefore, THREAD_SETTLE_MS);
  t.true(fdsSettled, `fds before ${fdsBefore}, after ${openFdCount()}`);
});
