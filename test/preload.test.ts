/**
 * LD_PRELOAD hand-off shim (native/preload): an unmodified daemon inside a
 * network namespace with no network at all (`unshare -n`, even lo is down)
 * serves TCP connections that a sender in the host namespace hands over as
 * file descriptors on a Unix socket (SCM_RIGHTS, protocol byte 0x01).
 *
 * Real processes, loopback only. Needs root (unshare -n), gcc and python3.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pollUntil } from './helpers/poll.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PRELOAD_DIR = join(ROOT, 'native', 'preload');
const SO = join(PRELOAD_DIR, 'libjumper_preload.so');
const BUILD_SH = join(PRELOAD_DIR, 'build.sh');
const SENDER = join(PRELOAD_DIR, 'handoff_send.py');

function commandWorks(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function unsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root';
  if (!commandWorks('gcc', ['--version'])) return 'gcc is not available';
  if (!commandWorks('python3', ['-c', 'import socket; socket.send_fds'])) return 'python3 (>= 3.9) is not available';
  if (!commandWorks('unshare', ['-n', 'true'])) return 'unshare -n does not work here';
  return undefined;
}

const reason = unsupportedReason();
const ptest = reason ? test.skip : test;
if (reason) console.log(`skipping preload shim tests: ${reason}`);

/** Daemon for cases 2 and 4: a plain stdlib socket server reporting what accept() gave it. */
const DAEMON_PY = `
import fcntl, json, os, socket, sys
port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('0.0.0.0', port))
srv.listen(16)
# TCP-level option on what is now a Unix socket must not raise.
srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print(json.dumps({'ready': True, 'listening': list(srv.getsockname())}), flush=True)
n = 0
while True:
    c, peer = srv.accept()
    n += 1
    fd = c.fileno()
    info = {
        'n': n,
        'acceptPeer': list(peer),
        'peer': list(c.getpeername()),
        'sock': list(c.getsockname()),
        'blocking': os.get_blocking(fd),
        'cloexec': bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
        'listening': list(srv.getsockname()),
    }
    c.sendall((json.dumps(info) + '\\n').encode())
    c.close()
`;

/** Sends a series of malformed hand-offs; checks the shim closed the fds it received. */
const MALFORMED_PY = `
import json, os, socket, sys
path = sys.argv[1]
results = {}

def conn():
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect(path)
    return u

def wait_closed(u):
    # the shim must close the Unix connection after a bad hand-off
    u.settimeout(10)
    return u.recv(1) == b''

def peer_closed(s):
    # the shim must close a bad fd it received: our end of the pair sees EOF
    s.settimeout(10)
    try:
        return s.recv(1) == b''
    except OSError:
        return False

# 1. wrong version byte 0x02 with a valid stream socket fd
a, b = socket.socketpair()
u = conn(); socket.send_fds(u, [b'\\x02'], [b.fileno()]); b.close()
results['badVersionConnClosed'] = wait_closed(u); u.close()
results['badVersionFdClosed'] = peer_closed(a); a.close()

# 2. right byte, no fd
u = conn(); u.sendall(b'\\x01')
results['noFdConnClosed'] = wait_closed(u); u.close()

# 3. right byte, two fds
a1, b1 = socket.socketpair(); a2, b2 = socket.socketpair()
u = conn(); socket.send_fds(u, [b'\\x01'], [b1.fileno(), b2.fileno()]); b1.close(); b2.close()
results['twoFdsConnClosed'] = wait_closed(u); u.close()
results['twoFdsClosed'] = peer_closed(a1) and peer_closed(a2); a1.close(); a2.close()

# 4. right byte, fd that is not a socket
r, w = os.pipe()
u = conn(); socket.send_fds(u, [b'\\x01'], [r]); os.close(r)
results['pipeConnClosed'] = wait_closed(u); u.close()
os.close(w)

# 5. two-byte payload with one fd
a, b = socket.socketpair()
u = conn(); socket.send_fds(u, [b'\\x01\\x01'], [b.fileno()]); b.close()
results['longPayloadConnClosed'] = wait_closed(u); u.close()
results['longPayloadFdClosed'] = peer_closed(a); a.close()

# 6. connect and hang up without sending anything
u = conn(); u.close()

print(json.dumps(results), flush=True)
`;

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  nextJson(timeoutMs?: number): Promise<Record<string, unknown>>;
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Spawn in its own process group; killed (whole group) at test teardown. */
function start(t: ExecutionContext, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<() => void> = [];
  let jsonCursor = 0;
  let buf = '';
  const wake = () => waiters.splice(0).forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  let exited = false;
  child.on('exit', () => {
    exited = true;
    wake();
  });
  t.teardown(async () => {
    if (!exited && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await new Promise<void>((res) => (exited ? res() : child.once('exit', () => res())));
    }
  });
  const until = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`timed out waiting for ${what} from ${cmd} ${args.join(' ')}; stdout=${JSON.stringify(lines)} stderr=${stderr.join('')}`)), timeoutMs);
      const check = () => {
        const v = find();
        if (v !== undefined) {
          clearTimeout(timer);
          res(v);
        } else if (exited) {
          clearTimeout(timer);
          rej(new Error(`${cmd} exited while waiting for ${what}; stdout=${JSON.stringify(lines)} stderr=${stderr.join('')}`));
        } else waiters.push(check);
      };
      check();
    });
  return {
    child,
    lines,
    stderr,
    nextJson: (timeoutMs = 15_000) =>
      until(() => {
        while (jsonCursor < lines.length) {
          const l = (lines[jsonCursor++] ?? '').trim();
          if (l.startsWith('{')) return JSON.parse(l) as Record<string, unknown>;
        }
        return undefined;
      }, 'a JSON line', timeoutMs),
    waitForLine: (re, timeoutMs = 15_000) => until(() => lines.find((l) => re.test(l)), String(re), timeoutMs),
  };
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-preload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => res(port));
    });
  });
}

async function waitForFile(path: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Environment without any JUMPER_PRELOAD_* variables inherited from the runner. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('JUMPER_PRELOAD_')) delete env[k];
  return env;
}

function shimEnv(port: number, sock: string): NodeJS.ProcessEnv {
  return { ...baseEnv(), LD_PRELOAD: SO, JUMPER_PRELOAD_PORT: String(port), JUMPER_PRELOAD_SOCKET: sock };
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 15_000 }, (resp) => {
      let body = '';
      resp.setEncoding('utf8');
      resp.on('data', (d: string) => (body += d));
      resp.on('end', () => res({ status: resp.statusCode ?? 0, body }));
      resp.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error('HTTP request timed out')));
    req.on('error', rej);
  });
}

/** Connect, read one JSON line from the daemon; also return our local port. */
function tcpJson(port: number): Promise<{ localPort: number; info: Record<string, unknown> }> {
  return new Promise((res, rej) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    let localPort = 0;
    s.setTimeout(15_000, () => s.destroy(new Error('TCP read timed out')));
    s.on('connect', () => (localPort = s.localPort ?? 0));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => {
      try {
        res({ localPort, info: JSON.parse(data.trim()) as Record<string, unknown> });
      } catch (e) {
        rej(new Error(`bad reply ${JSON.stringify(data)}: ${String(e)}`));
      }
      s.destroy();
    });
    s.on('error', rej);
  });
}

test.before('build libjumper_preload.so', () => {
  if (reason) return;
  execFileSync('bash', [BUILD_SH], { cwd: ROOT, stdio: 'inherit', timeout: 120_000 });
  if (!existsSync(SO)) throw new Error(`${SO} was not built`);
});

ptest('stock http.server in an empty netns serves handed-off connections', async (t) => {
  const dir = tempDir(t);
  const www = join(dir, 'www');
  execFileSync('mkdir', [www]);
  const content = `hello ${randomBytes(24).toString('hex')}\n`;
  writeFileSync(join(www, 'hello.txt'), content);
  const sock = join(dir, 'handoff.sock');

  const daemon = start(t, 'unshare', ['-n', 'python3', '-m', 'http.server', '8000', '--bind', '0.0.0.0'], {
    env: shimEnv(8000, sock),
    cwd: www,
  });
  const port = await freePort();
  const sender = start(t, 'python3', [SENDER, String(port), sock], { env: baseEnv() });
  t.like(await sender.nextJson(), { ready: true });
  await waitForFile(sock);

  for (let i = 0; i < 3; i++) {
    const r = await httpGet(port, '/hello.txt');
    t.is(r.status, 200, `request ${i + 1}`);
    t.is(r.body, content, `request ${i + 1}`);
  }
  for (let i = 1; i <= 3; i++) t.like(await sender.nextJson(), { handed: i });
  t.is(daemon.child.exitCode, null, 'daemon still running');
});

ptest('accept() returns the original TCP socket, not a relay', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const daemon = start(t, 'unshare', ['-n', 'python3', '-c', DAEMON_PY, '8001'], { env: shimEnv(8001, sock) });
  t.deepEqual(await daemon.nextJson(), { ready: true, listening: ['0.0.0.0', 8001] });
  const port = await freePort();
  const sender = start(t, 'python3', [SENDER, String(port), sock], { env: baseEnv() });
  t.like(await sender.nextJson(), { ready: true });
  await waitForFile(sock);

  for (let i = 1; i <= 2; i++) {
    const { localPort, info } = await tcpJson(port);
    t.true(localPort > 0);
    t.deepEqual(info.peer, ['127.0.0.1', localPort], 'getpeername() is the real TCP client');
    t.deepEqual(info.acceptPeer, ['127.0.0.1', localPort], 'accept() address is the real TCP client');
    t.deepEqual(info.sock, ['127.0.0.1', port], 'getsockname() is the host-side listening address');
    t.deepEqual(info.listening, ['0.0.0.0', 8001], 'listening socket reports its requested address');
    t.is(info.blocking, true, 'O_NONBLOCK from the sender was cleared (accept4 without SOCK_NONBLOCK)');
    t.is(info.cloexec, true, 'SOCK_CLOEXEC applied');
    t.is(info.n, i);
  }
});

ptest('without JUMPER_PRELOAD_* the library changes nothing', async (t) => {
  const dir = tempDir(t);
  const content = `plain ${randomBytes(16).toString('hex')}\n`;
  writeFileSync(join(dir, 'hello.txt'), content);

  // No JUMPER_* variables at all.
  const port = await freePort();
  const env = { ...baseEnv(), LD_PRELOAD: SO };
  const d1 = start(t, 'python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], { env, cwd: dir });
  await d1.waitForLine(/Serving HTTP/);
  const r1 = await httpGet(port, '/hello.txt');
  t.is(r1.status, 200);
  t.is(r1.body, content);

  // Only half configured (port but no socket path): still inert.
  const port2 = await freePort();
  const env2 = { ...baseEnv(), LD_PRELOAD: SO, JUMPER_PRELOAD_PORT: String(port2) };
  const d2 = start(t, 'python3', ['-m', 'http.server', String(port2), '--bind', '127.0.0.1'], { env: env2, cwd: dir });
  await d2.waitForLine(/Serving HTTP/);
  const r2 = await httpGet(port2, '/hello.txt');
  t.is(r2.status, 200);
  t.is(r2.body, content);

  t.deepEqual(readdirSync(dir).sort(), ['hello.txt'], 'no socket file was created');
});

ptest('malformed hand-offs are closed and skipped; the next good one is served', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const daemon = start(t, 'unshare', ['-n', 'python3', '-c', DAEMON_PY, '8001'], { env: shimEnv(8001, sock) });
  t.like(await daemon.nextJson(), { ready: true });
  await waitForFile(sock);

  const bad = start(t, 'python3', ['-c', MALFORMED_PY, sock], { env: baseEnv() });
  t.deepEqual(await bad.nextJson(30_000), {
    badVersionConnClosed: true,
    badVersionFdClosed: true,
    noFdConnClosed: true,
    twoFdsConnClosed: true,
    twoFdsClosed: true,
    pipeConnClosed: true,
    longPayloadConnClosed: true,
    longPayloadFdClosed: true,
  });

  const port = await freePort();
  const sender = start(t, 'python3', [SENDER, String(port), sock, '1'], { env: baseEnv() });
  t.like(await sender.nextJson(), { ready: true });
  const { localPort, info } = await tcpJson(port);
  t.deepEqual(info.peer, ['127.0.0.1', localPort]);
  t.is(info.n, 1, 'no malformed hand-off reached the daemon as a connection');
  t.is(daemon.child.exitCode, null, 'daemon still running');
});

ptest('a live listener at the hand-off path keeps it (the daemon gets EADDRINUSE); a stale socket file is replaced', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'handoff.sock');
  const holder = net.createServer();
  const held: net.Socket[] = [];
  holder.on('connection', (c) => held.push(c));
  await new Promise<void>((res) => holder.listen(sock, res));
  t.teardown(() => {
    held.forEach((c) => c.destroy());
    holder.close();
  });
  const refused = start(t, 'unshare', ['-n', 'python3', '-c', DAEMON_PY, '8001'], { env: shimEnv(8001, sock) });
  // A shim that took the path would leave the daemon running: give it 15 s, not ava's timeout.
  const code = await new Promise<number | null | 'running'>((res) => {
    const timer = setTimeout(() => res('running'), 15_000);
    refused.child.once('close', (c) => {
      clearTimeout(timer);
      res(c);
    });
  });
  t.true(typeof code === 'number' && code !== 0, `the daemon exited with an error (${code})`);
  t.regex(refused.stderr.join(''), /Address already in use/);
  // The holder's path still leads to the holder.
  const before = held.length;
  const probe = net.connect(sock);
  await new Promise<void>((res, rej) => probe.once('connect', res).once('error', rej));
  probe.destroy();
  await pollUntil(() => held.length !== before, 2000);
  t.true(held.length > before, 'the live listener still gets connections at its path');

  // A socket file nobody listens on (its process died without unlinking it) is replaced.
  await new Promise<void>((res) => holder.close(() => res()));
  execFileSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)})`]);
  t.true(existsSync(sock));
  const daemon = start(t, 'unshare', ['-n', 'python3', '-c', DAEMON_PY, '8001'], { env: shimEnv(8001, sock) });
  t.like(await daemon.nextJson(), { ready: true });
  const port = await freePort();
  const sender = start(t, 'python3', [SENDER, String(port), sock, '1'], { env: baseEnv() });
  t.like(await sender.nextJson(), { ready: true });
  const { info } = await tcpJson(port);
  t.is(info.n, 1);
});
