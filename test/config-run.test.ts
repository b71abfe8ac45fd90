/**
 * `jumper run --config`: many links in one process, reloaded with SIGHUP.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes as cryptoRandom } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { JumperMetrics } from '../src/admin/metrics.js';
import { Supervisor } from '../src/config/run.js';
import { readKeyFile } from '../src/keys/key-file.js';
import { captureLogger } from './helpers/capture-logger.js';
import { freePort } from './helpers/cli.js';
import { parsePromText } from './helpers/prom-text.js';
import { etcdUnavailableReason, startEtcd } from './helpers/etcd.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { adminGet, linkPort, runJumperSrc, startJumperSrc } from './helpers/run-cli.js';
import { waitListening } from './helpers/spiped.js';
import { pollUntil } from './helpers/poll.js';

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeKey(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, cryptoRandom(32), { mode: 0o600 });
  return file;
}

/** A stream kept open across a reload: first half now, the rest later. */
class HeldStream {
  readonly #socket: net.Socket;
  readonly #chunks: Buffer[] = [];
  readonly ended: Promise<{ data: Buffer; ending: string }>;
  constructor(port: number) {
    this.#socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.#socket.on('data', (c: Buffer) => this.#chunks.push(c));
    this.ended = new Promise((resolve) => {
      this.#socket.once('end', () => resolve({ data: Buffer.concat(this.#chunks), ending: 'end' }));
      this.#socket.once('error', (err: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(this.#chunks), ending: err.code ?? 'error' }));
    });
  }
  /** Send, then wait until the echo has caught up. */
  async send(data: Buffer): Promise<void> {
    const want = this.#chunks.reduce((n, c) => n + c.length, 0) + data.length;
    this.#socket.write(data);
    while (this.#chunks.reduce((n, c) => n + c.length, 0) < want) await new Promise((r) => setTimeout(r, 10));
  }
  finish(): void {
    this.#socket.end();
  }
}

const linkStarted = (name: string) => (l: Record<string, unknown>) => l.msg === 'link started' && l.link === name;

test('20 links of mixed roles start from one file, and each carries hash-equal traffic', async (t) => {
  const dir = tempDir(t);
  const providers = await Promise.all([startEchoProvider(t), startEchoProvider(t), startEchoProvider(t)]);
  const links: Record<string, unknown>[] = [];
  for (let i = 0; i < 6; i++) {
    const key = writeKey(dir, `k${i}`);
    const sock = join(dir, `s${i}.sock`);
    links.push({ name: `server-${i}`, role: 'server', listen: sock, connect: providers[i % 3]!.address, key });
    links.push({ name: `client-${i}`, role: 'client', listen: '127.0.0.1:0', connect: sock, key, 'handshake-timeout': '5s' });
  }
  for (let i = 0; i < 4; i++) links.push({ name: `forward-${i}`, role: 'forward', listen: '127.0.0.1:0', connect: providers[i % 3]!.address, 'max-connections': 50 });
  for (let i = 0; i < 4; i++) {
    links.push({ name: `balance-${i}`, role: 'balance', listen: '127.0.0.1:0', backends: providers.map((p) => p.address), strategy: 'round-robin' });
  }
  t.is(links.length, 20);
  const file = join(dir, 'jumper.yaml');
  writeFileSync(file, stringify({ 'drain-timeout': '5s', links }));
  const run = startJumperSrc(t, ['run', '--config', file, '--admin', '127.0.0.1:0']);
  const adminLine = await run.waitFor((l) => l.msg === 'admin endpoint listening: /metrics /healthz /status');
  const admin = adminLine.admin as string;
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');

  const entryLinks = links.filter((l) => l.role !== 'server').map((l) => l.name as string);
  const results = await Promise.all(
    entryLinks.map(async (name) => {
      const data = randomBytes(200_000);
      const port = await linkPort(admin, name);
      const r = await exchange({ port }, data);
      return { name, ok: r.ending === 'end' && sha256(r.received) === sha256(data) };
    }),
  );
  for (const r of results) t.true(r.ok, `${r.name} carried the bytes intact`);
  // One stream per link (the clients' through their servers) has recorded its end.
  const ended = () => run.logs.filter((l) => l.msg === 'connection closed' || l.msg === 'connection failed').length;
  await pollUntil(() => ended() >= 20, 5000);
  t.is(ended(), 20, 'every stream recorded its end');
  const status = JSON.parse((await adminGet(admin, '/status')).body) as { links: { name: string; state: string; stats: { total: number; failed: number } }[] };
  t.is(status.links.length, 20);
  for (const l of status.links) {
    t.is(l.state, 'running', l.name);
    t.true(l.stats.total >= 1, `${l.name} served a connection`);
    t.is(l.stats.failed, 0, `${l.name} had no failure`);
  }
  t.is((await adminGet(admin, '/healthz')).status, 200);
});

test('SIGHUP: a removed link drains its open stream, an added link starts, a changed link moves, others never drop; a broken file is refused', async (t) => {
  const dir = tempDir(t);
  const [a, b] = await Promise.all([startEchoProvider(t), startEchoProvider(t)]);
  const key = writeKey(dir, 'k');
  const sock = join(dir, 's.sock');
  const base = [
    { name: 'server', role: 'server', listen: sock, connect: a.address, key },
    { name: 'client', role: 'client', listen: '127.0.0.1:0', connect: sock, key },
    { name: 'gone', role: 'forward', listen: '127.0.0.1:0', connect: a.address },
    { name: 'moved', role: 'forward', listen: '127.0.0.1:0', connect: a.address },
  ];
  const file = join(dir, 'jumper.yaml');
  writeFileSync(file, stringify({ 'drain-timeout': '20s', links: base }));
  const run = startJumperSrc(t, ['run', '--config', file, '--admin', '127.0.0.1:0']);
  const admin = (await run.waitFor((l) => typeof l.admin === 'string')).admin as string;
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  const gonePort = await linkPort(admin, 'gone');
  const movedPort = await linkPort(admin, 'moved');

  // Streams open across the reload: one on the link being removed, one through client+server (kept),
  // one on the link being changed.
  const first = randomBytes(100_000);
  const second = randomBytes(100_000);
  const onGone = new HeldStream(gonePort);
  const onKept = new HeldStream(await linkPort(admin, 'client'));
  const onMoved = new HeldStream(movedPort);
  await Promise.all([onGone.send(first), onKept.send(first), onMoved.send(first)]);

  const next = [...base.filter((l) => l.name !== 'gone' && l.name !== 'moved'), { ...base[3]!, connect: b.address }, { name: 'added', role: 'forward', listen: '127.0.0.1:0', connect: b.address }];
  writeFileSync(file, stringify({ 'drain-timeout': '20s', links: next }));
  run.child.kill('SIGHUP');
  const reloaded = await run.waitFor((l) => l.msg === 'configuration reloaded');
  t.deepEqual(reloaded.removed, ['gone']);
  t.deepEqual(reloaded.added, ['added']);
  t.deepEqual(reloaded.changed, ['moved']);
  t.deepEqual((reloaded.unchanged as string[]).sort(), ['client', 'server']);

  // The open streams carry on and finish intact.
  await Promise.all([onGone.send(second), onKept.send(second), onMoved.send(second)]);
  for (const s of [onGone, onKept, onMoved]) s.finish();
  const whole = sha256(Buffer.concat([first, second]));
  for (const [name, s] of [['removed link', onGone], ['unchanged link', onKept], ['changed link (old instance)', onMoved]] as const) {
    const r = await s.ended;
    t.is(r.ending, 'end', `${name}: clean end`);
    t.is(sha256(r.data), whole, `${name}: all bytes`);
  }
  // The removed link no longer accepts; the added and changed links serve (the changed one toward b).
  await run.waitFor((l) => l.msg === 'link stopped' && l.link === 'gone');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ port: gonePort, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.is(refused, 'ECONNREFUSED');
  const bBefore = b.connections;
  for (const name of ['added', 'moved']) {
    const data = randomBytes(50_000);
    const r = await exchange({ port: await linkPort(admin, name) }, data);
    t.is(sha256(r.received), sha256(data), name);
  }
  t.is(b.connections - bBefore, 2, 'added and changed links now reach provider b');
  t.truthy(run.logs.find(linkStarted('added')));
  // Six streams ended: on gone, client and server (the kept one), moved (old and new), added.
  const ended = () => run.logs.filter((l) => l.msg === 'connection closed' || l.msg === 'connection failed').length;
  await pollUntil(() => ended() >= 6, 5000);
  t.is(ended(), 6, 'every stream recorded its end');
  const serverFailures = run.logs.filter((l) => l.msg === 'connection failed');
  t.deepEqual(serverFailures, [], 'no stream failed anywhere');

  // A broken file is refused and logged; everything keeps running as before.
  writeFileSync(file, 'links:\n  - name: x\n    role: client\n    listen: 127.0.0.1:0\n    conect: nowhere\n');
  run.child.kill('SIGHUP');
  const refusedLine = await run.waitFor((l) => l.msg === 'reload refused: keeping the running configuration');
  t.regex(String(refusedLine.err), /links\[0\]\.conect: unknown key \(did you mean "connect"\?\)/);
  t.is(refusedLine.code, 'JUMPER_ERR_CONFIG');
  const status = JSON.parse((await adminGet(admin, '/status')).body) as { config: { lastReloadError?: string; reloads: number }; links: { name: string; state: string }[] };
  t.is(status.config.reloads, 1);
  t.regex(status.config.lastReloadError ?? '', /conect/);
  t.deepEqual(status.links.filter((l) => l.state === 'running').map((l) => l.name).sort(), ['added', 'client', 'moved', 'server']);
  const data = randomBytes(10_000);
  const r = await exchange({ port: await linkPort(admin, 'client') }, data);
  t.is(sha256(r.received), sha256(data), 'the old configuration still serves');

  // SIGTERM drains and exits 0.
  run.child.kill('SIGTERM');
  t.deepEqual(await run.exited, { code: 0, signal: null });
});

test('a reload that cannot build a link (unreadable key) is refused as a whole', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  const file = join(dir, 'jumper.yaml');
  writeFileSync(file, stringify({ links: [{ name: 'f', role: 'forward', listen: '127.0.0.1:0', connect: provider.address }] }));
  const run = startJumperSrc(t, ['run', '--config', file, '--admin', '127.0.0.1:0']);
  const admin = (await run.waitFor((l) => typeof l.admin === 'string')).admin as string;
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  const port = await linkPort(admin, 'f');
  writeFileSync(
    file,
    stringify({
      links: [
        { name: 'f', role: 'forward', listen: '127.0.0.1:0', connect: provider.address, 'max-connections': 3 },
        { name: 'c', role: 'client', listen: '127.0.0.1:0', connect: '127.0.0.1:1', key: join(dir, 'missing.key') },
      ],
    }),
  );
  run.child.kill('SIGHUP');
  const line = await run.waitFor((l) => l.msg === 'reload refused: keeping the running configuration');
  t.regex(String(line.err), /links "c": .*missing\.key/);
  t.is(await linkPort(admin, 'f'), port, 'the unchanged-in-force link was not restarted');
  t.falsy(run.logs.find(linkStarted('c')));
});

test('reloading a changed registered link moves it to its new instance on the same port (no deregister delay in between)', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  const key = writeKey(dir, 's.key');
  const port = await freePort();
  const file = join(dir, 'jumper.yaml');
  // etcd is unreachable here: registration fails and is retried, but the deregister delay would still
  // apply on a stop. A minute of it: a reload that waited for it would not finish within waitFor's bound.
  const link = {
    name: 's',
    role: 'server',
    listen: `127.0.0.1:${port}`,
    connect: provider.address,
    key,
    register: 'etcd://127.0.0.1:1/jumper-test',
    advertise: `127.0.0.1:${port}`,
    'deregister-delay': '60s',
  };
  writeFileSync(file, stringify({ links: [link] }));
  const run = startJumperSrc(t, ['run', '--config', file]);
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  writeFileSync(file, stringify({ links: [{ ...link, 'connect-timeout': '3s' }] }));
  run.child.kill('SIGHUP');
  await run.waitFor((l) => l.msg === 'configuration reloaded');
  t.falsy(run.logs.find((l) => l.msg === 'link failed to start'), JSON.stringify(run.logs.find((l) => l.msg === 'link failed to start')));
  t.truthy(run.logs.find((l) => l.msg === 'link started' && l.link === 's' && l.change === 'changed'));
});

test('run --check reports every problem with file, line and key path, exit status 2', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, ['links:', '  - name: a', '    role: client', '    listen: 127.0.0.1:0', '    connect: 127.0.0.1:1', '    key: /nonexistent', "    connect-timeout: '5 sec'", '    colour: blue', ''].join('\n'));
  const err = await runJumperSrc(['run', '--config', file, '--check']);
  t.is(err.code, 2);
  t.regex(err.stderr, new RegExp(`${file}:7: links\\[0\\]\\.connect-timeout: expected a duration`));
  t.regex(err.stderr, new RegExp(`${file}:8: links\\[0\\]\\.colour: unknown key`));
  t.regex(err.stderr, /JUMPER_ERR_CONFIG/);
});

const noEtcd = etcdUnavailableReason();
if (noEtcd) console.log(`# config-run: the double-SIGHUP test is skipped: ${noEtcd}`);

(noEtcd ? test.skip : test)('a second SIGHUP while a reload still runs is applied after it, not lost', async (t) => {
  const dir = tempDir(t);
  const provider = await startEchoProvider(t);
  // A link registering in a frozen etcd holds its reload for seconds (the registration's first attempt).
  const etcd = await startEtcd(t);
  process.kill(etcd.pid()!, 'SIGSTOP');
  const file = join(dir, 'jumper.yaml');
  const link = (name: string, extra: Record<string, unknown> = {}) => ({ name, role: 'forward', listen: '127.0.0.1:0', connect: provider.address, ...extra });
  writeFileSync(file, stringify({ links: [link('a')] }));
  const run = startJumperSrc(t, ['run', '--config', file, '--admin', '127.0.0.1:0']);
  const admin = (await run.waitFor((l) => l.msg === 'admin endpoint listening: /metrics /healthz /status')).admin as string;
  await run.waitFor((l) => l.msg === 'jumper run: all links listening');
  const slowPort = await freePort();
  const slow = link('slow', { listen: `127.0.0.1:${slowPort}`, register: etcd.url('/jumper/reload'), advertise: `127.0.0.1:${slowPort}` });
  writeFileSync(file, stringify({ links: [link('a'), slow] }));
  run.child.kill('SIGHUP');
  await run.waitFor((l) => l.msg === 'SIGHUP: reloading the configuration');
  // The first reload has read the file (its new link listens) and waits on etcd: this edit needs a second read.
  await waitListening(slowPort);
  t.false(run.logs.some((l) => l.msg === 'configuration reloaded'), 'the first reload is still running');
  writeFileSync(file, stringify({ links: [link('a'), slow, link('late')] }));
  run.child.kill('SIGHUP');
  const second = await run.waitFor((l) => l.msg === 'configuration reloaded' && Array.isArray(l.added) && (l.added as string[]).includes('late'), 45_000);
  t.deepEqual(second.added, ['late']);
  const data = randomBytes(50_000);
  const r = await exchange({ port: await linkPort(admin, 'late') }, data);
  t.is(sha256(r.received), sha256(data));
});

test('run --check refuses what run would refuse before listening: an unknown user, connect-netns with user, a bad admin address', async (t) => {
  const dir = tempDir(t);
  const link = ['links:', '  - name: a', '    role: forward', '    listen: 127.0.0.1:0', '    connect: 127.0.0.1:1'];
  const check = async (lines: string[], extra: string[] = []) => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, [...lines, ''].join('\n'));
    return runJumperSrc(['run', '--config', file, '--check', ...extra]);
  };
  const fine = await check(link);
  t.is(fine.code, 0, fine.stderr);
  t.regex(fine.stdout, /ok, 1 link/);
  const unknownUser = await check(['user: no-such-user-jumper', ...link]);
  t.is(unknownUser.code, 2);
  t.regex(unknownUser.stderr, /no-such-user-jumper/);
  const netns = await check(['user: nobody', ...link, '    connect-netns: somewhere']);
  t.is(netns.code, 2);
  t.regex(netns.stderr, /links "a": --connect-netns .* cannot run after --user drops root/);
  const admin = await check(['admin: localhost', ...link]);
  t.is(admin.code, 2);
  t.regex(admin.stderr, /localhost/);
  const cliUser = await check(link, ['--user', 'no-such-user-jumper']);
  t.is(cliUser.code, 2);
  t.regex(cliUser.stderr, /no-such-user-jumper/);
});

test('a link that failed to start and is then removed leaves no jumper_link_up series; key fingerprints are in the start and reload lines', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'j.yaml');
  const key = writeKey(dir, 'k');
  const busy = net.createServer().listen(0, '127.0.0.1');
  t.teardown(() => busy.close());
  await new Promise((r) => busy.once('listening', r));
  const busyPort = (busy.address() as net.AddressInfo).port;
  const client = { name: 'c', role: 'client', listen: '127.0.0.1:0', connect: '127.0.0.1:1', key };
  writeFileSync(file, stringify({ links: [client] }));
  const logger = captureLogger();
  const metrics = new JumperMetrics();
  const supervisor = new Supervisor({ file, logger, metrics });
  t.teardown(() => supervisor.stop(0));
  await supervisor.start();
  const fingerprint = (await readKeyFile(key)).fingerprint;
  t.deepEqual(logger.lines.find((l) => l.msg === 'link started' && l.link === 'c')?.keys, [fingerprint]);

  // Added on a taken port: down.
  writeFileSync(file, stringify({ links: [client, { name: 'x', role: 'forward', listen: `127.0.0.1:${busyPort}`, connect: '127.0.0.1:1' }] }));
  await supervisor.reload();
  t.is(parsePromText(await metrics.text()).get('jumper_link_up', { link: 'x' }), 0);
  // Removed again, and the client's key file content replaced: the series goes; the new fingerprint is logged.
  writeFileSync(key, cryptoRandom(32), { mode: 0o600 });
  writeFileSync(file, stringify({ links: [client] }));
  await supervisor.reload();
  const m = parsePromText(await metrics.text());
  t.is(m.get('jumper_link_up', { link: 'x' }), undefined);
  t.is(m.get('jumper_link_up', { link: 'c' }), 1);
  const changed = logger.lines.find((l) => l.msg.startsWith('link keys changed') && l.link === 'c');
  t.deepEqual(changed?.keys, [(await readKeyFile(key)).fingerprint]);
  t.deepEqual(changed?.previous, [fingerprint]);
});
