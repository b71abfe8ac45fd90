/**
 * Least privilege: --user drops root after listening and still serves;
 * what would need root later is refused up front; Unix listener mode/owner.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { createClient, createForward } from '../src/index.js';
import { resolveDropTarget } from '../src/privilege/drop.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { freePort } from './helpers/cli.js';
import { makeKeyFile, waitListening } from './helpers/spiped.js';
import { etcdUnavailableReason, startEtcd } from './helpers/etcd.js';
import { adminGet, JUMPER_SRC, linkPort, startJumperSrc } from './helpers/run-cli.js';
import { pollUntil } from './helpers/poll.js';

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const rootTest = isRoot ? test : test.skip;
if (!isRoot) console.log('skipping privilege-drop tests: they need root (run the tests as root)');

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-priv-'));
  chmodSync(dir, 0o755); // nobody must be able to traverse it
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Real, effective, saved and filesystem ids from /proc/PID/status. */
function idsOf(pid: number): { uid: string[]; gid: string[]; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').trim();
  return { uid: field('Uid').split(/\s+/), gid: field('Gid').split(/\s+/), groups: field('Groups') };
}

rootTest('jumper forward --user nobody: runs as nobody (all four ids) and still serves', async (t) => {
  const nobody = resolveDropTarget('nobody');
  const provider = await startEchoProvider(t);
  const run = startJumperSrc(t, ['forward', '--listen', '127.0.0.1:0', '--connect', provider.address, '--user', 'nobody', '--admin', '127.0.0.1:0']);
  const dropped = await run.waitFor((l) => l.msg === 'privileges dropped');
  t.is(dropped.uid, nobody.uid);
  const listening = await run.waitFor((l) => l.msg === 'forward jumper listening');
  const admin = run.logs.find((l) => typeof l.admin === 'string')!.admin as string;
  const port = Number(String(listening.listen).split(':').pop());
  const ids = idsOf(run.child.pid!);
  t.deepEqual(ids.uid, Array(4).fill(String(nobody.uid)));
  t.deepEqual(ids.gid, Array(4).fill(String(nobody.gid)));
  t.false(ids.groups.split(/\s+/).includes('0'), 'no root supplementary group left');
  const data = randomBytes(300_000);
  const r = await exchange({ port }, data);
  t.is(sha256(r.received), sha256(data));
  const status = JSON.parse((await adminGet(admin, '/status')).body) as {
    links: { stats: { total: number } }[];
  };
  t.is(status.links[0]!.stats.total, 1);
});

rootTest('jumper run with user: nobody drops after every link listens, then serves', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  const key = join(dir, 'k');
  writeFileSync(key, randomBytes(32), { mode: 0o600 });
  const sock = join(dir, 's.sock');
  const file = join(dir, 'jumper.yaml');
  writeFileSync(
    file,
    stringify({
      user: 'nobody',
      links: [
        // A privileged port: bound as root before the drop.
        { name: 'low', role: 'forward', listen: '127.0.0.1:1', connect: provider.address },
        { name: 's', role: 'server', listen: sock, connect: provider.address, key, 'listen-owner': 'nobody' },
        { name: 'c', role: 'client', listen: '127.0.0.1:0', connect: sock, key },
      ],
    }),
  );
  const run = startJumperSrc(t, ['run', '--config', file, '--admin', '127.0.0.1:0']);
  const admin = (await run.waitFor((l) => typeof l.admin === 'string')).admin as string;
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  t.is(idsOf(run.child.pid!).uid[1], String(resolveDropTarget('nobody').uid));
  for (const port of [1, await linkPort(admin, 'c')]) {
    const data = randomBytes(100_000);
    const r = await exchange({ port }, data);
    t.is(sha256(r.received), sha256(data), `port ${port}`);
  }
  // After the drop, a reload may not add what needs root again.
  writeFileSync(
    file,
    stringify({
      user: 'nobody',
      links: [
        { name: 'low', role: 'forward', listen: '127.0.0.1:1', connect: provider.address },
        { name: 's', role: 'server', listen: sock, connect: provider.address, key, 'listen-owner': 'nobody' },
        { name: 'c', role: 'client', listen: '127.0.0.1:0', connect: sock, key },
        { name: 'low2', role: 'forward', listen: '127.0.0.1:2', connect: provider.address },
      ],
    }),
  );
  run.child.kill('SIGHUP');
  const refused = await run.waitFor((l) => l.msg === 'reload refused: keeping the running configuration');
  t.regex(String(refused.err), /links "low2": listening on port 2 needs root, and privileges were dropped/);
});

rootTest('--user with --connect-netns is refused before anything listens', async (t) => {
  const err = (await execFileAsync(process.execPath, [
    '--import',
    'tsx',
    JUMPER_SRC,
    'forward',
    '--listen',
    '127.0.0.1:0',
    '--connect',
    '127.0.0.1:1',
    '--connect-netns',
    'pid:1',
    '--user',
    'nobody',
  ]).catch((e: unknown) => e)) as { code: number; stderr: string };
  t.is(err.code, 2);
  t.regex(err.stderr, /--connect-netns enters the namespace \(CAP_SYS_ADMIN\) for every new connection, so it cannot run after --user drops root/);
  t.is(err.stderr.trim().split('\n').length, 1);
});

rootTest('a Unix listener gets --listen-mode and --listen-owner', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  const path = join(dir, 'f.sock');
  const nobody = resolveDropTarget('nobody');
  const forward = createForward({ listen: path, connect: provider.address, listenMode: 0o660, listenOwner: { uid: nobody.uid, gid: nobody.gid } });
  await forward.listen();
  t.teardown(() => forward.close({ drainTimeoutMs: 0 }));
  const st = statSync(path);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o660);
  t.is(st.uid, nobody.uid);
  t.is(st.gid, nobody.gid);
  const data = randomBytes(1000);
  t.is(sha256((await exchange({ path }, data)).received), sha256(data));
});

test('unknown users and root are refused as drop targets', (t) => {
  t.throws(() => resolveDropTarget('no-such-user-jumper'), { code: 'JUMPER_ERR_INVALID_ARG', message: /no such user/ });
  t.throws(() => resolveDropTarget('root'), { code: 'JUMPER_ERR_INVALID_ARG', message: /not root/ });
  t.throws(() => resolveDropTarget('nobody', 'no-such-group-jumper'), { code: 'JUMPER_ERR_INVALID_ARG', message: /no such group/ });
});

const noEtcd = etcdUnavailableReason();
if (noEtcd) console.log(`# privilege: the drop-gate test is skipped: ${noEtcd}`);

(noEtcd ? test.skip : rootTest)('a connection accepted before the drop waits for it: an exec: command never runs as root', async (t) => {
  // A frozen etcd holds start-up after the listener is up (the registration's
  // first attempt waits out its deadline): the drop comes seconds after accepting began.
  const etcd = await startEtcd(t);
  process.kill(etcd.pid()!, 'SIGSTOP');
  const key = await makeKeyFile(t);
  const port = await freePort();
  const run = startJumperSrc(t, [
    'server', '--listen', `127.0.0.1:${port}`, '--connect', 'exec:id -u', '--key', key.path,
    '--register', etcd.url('/jumper/priv'), '--advertise', `127.0.0.1:${port}`, '--user', 'nobody',
  ]);
  // The server holds the stream until the drop, seconds later: the client waits for its handshake that long.
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${port}`, key: key.key, preconnect: 0, handshakeTimeoutMs: 60_000 });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  await waitListening(port);
  t.false(run.logs.some((l) => l.msg === 'privileges dropped'), 'the stream starts before the drop');
  const answer = (await exchange({ port: client.port()! }, Buffer.alloc(0))).received;
  // The log pipe and the socket race: wait for the line rather than read it at once.
  t.truthy(await run.waitFor((l) => l.msg === 'privileges dropped', 5_000), 'the drop was logged');
  t.is(answer?.toString().trim(), String(resolveDropTarget('nobody').uid));
});

rootTest('--user with --admin on a Unix socket in a root-owned directory: SIGTERM still drains the open stream and exits 0', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  const adminPath = join(dir, 'admin.sock');
  const run = startJumperSrc(t, ['forward', '--listen', '127.0.0.1:0', '--connect', provider.address, '--user', 'nobody', '--admin', adminPath]);
  const listening = await run.waitFor((l) => l.msg === 'forward jumper listening');
  const port = Number(String(listening.listen).split(':').pop());
  // A stream open across the SIGTERM: half now, half after.
  const socket = net.connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise((resolve) => socket.once('close', resolve));
  const first = randomBytes(64 * 1024);
  const second = randomBytes(64 * 1024);
  socket.write(first);
  await pollUntil(() => Buffer.concat(chunks).length >= first.length, 5000);
  t.is(Buffer.concat(chunks).length, first.length, 'the first half came back before the SIGTERM');
  const exited = new Promise<number | null>((resolve) => run.child.once('exit', (code) => resolve(code)));
  run.child.kill('SIGTERM');
  await run.waitFor((l) => l.msg === 'stopping: no new connections, draining open streams');
  await new Promise((r) => setTimeout(r, 200));
  socket.end(second);
  await closed;
  t.is(sha256(Buffer.concat(chunks)), sha256(Buffer.concat([first, second])));
  t.is(await exited, 0, JSON.stringify(run.logs.filter((l) => (l.level as number) >= 50)));
});
