/**
 * etcd over TLS and with etcd's own authentication, against a real etcd
 * (Debian etcd-server) and certificates made by the real openssl: an
 * etcds:// URL, --etcd-ca/--etcd-cert/--etcd-key, --etcd-user with
 * --etcd-password-file, and every way of getting them wrong.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { stringify } from 'yaml';
import { createBalancer, createForward, loadEtcdAccess, parseEtcdUrl, type EtcdAccess, type Jumper } from '../src/index.js';
import { Supervisor } from '../src/config/run.js';
import { captureLogger, type CapturedLogger } from './helpers/capture-logger.js';
import { createPki, opensslUnavailableReason, type TestPki } from './helpers/certs.js';
import { hasCommand } from './helpers/commands.js';
import { cliBuilt, freePort, JUMPER, startJumper } from './helpers/cli.js';
import { etcdUnavailableReason, startEtcd, type TestEtcd } from './helpers/etcd.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';

const execFileAsync = promisify(execFile);
const skipReason = etcdUnavailableReason() ?? opensslUnavailableReason();
const withEtcd = skipReason ? test.skip : test.serial;
if (skipReason) console.log(`# etcd TLS tests skipped: ${skipReason}`);
const withOpenssl = opensslUnavailableReason() ? test.skip : test;

const PREFIX = '/jumper/tls';

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-etcd-access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A forwarder to a fresh echo provider, registered under PREFIX with `etcd` credentials. */
async function registeredForward(t: ExecutionContext, etcd: TestEtcd, access: EtcdAccess, logger?: CapturedLogger): Promise<{ jumper: Jumper; address: string }> {
  const provider = await startEchoProvider(t);
  const address = `127.0.0.1:${await freePort()}`;
  const jumper = createForward({
    listen: address,
    connect: provider.address,
    register: { url: etcd.url(PREFIX), advertise: address, ttlSeconds: 2, deregisterDelayMs: 0 },
    etcd: access,
    ...(logger ? { logger } : {}),
  });
  t.teardown(() => jumper.close({ drainTimeoutMs: 0 }));
  await jumper.listen();
  return { jumper, address };
}

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One stream through `port`: whether the echo came back whole. */
async function echoes(port: number): Promise<boolean> {
  const payload = randomBytes(64 * 1024);
  try {
    const { received, ending } = await exchange({ port }, payload);
    return ending === 'end' && sha256(received) === sha256(payload);
  } catch {
    return false;
  }
}

withEtcd('etcds:// with a client certificate: a forwarder registers and a balancer discovers it over TLS; 20 streams hash-equal', async (t) => {
  const pki = createPki(t);
  const etcd = await startEtcd(t, { tls: pki, clientCertAuth: true });
  const client = pki.issueClient('jumper');
  const access = { caFile: pki.ca, certFile: client.cert, keyFile: client.key };
  const { address } = await registeredForward(t, etcd, access);
  t.deepEqual(Object.keys(await etcd.keys(PREFIX)), [`${PREFIX}/${address}`]);

  const balancer = createBalancer({ listen: '127.0.0.1:0', discover: etcd.url(PREFIX), etcd: access });
  t.teardown(() => balancer.close({ drainTimeoutMs: 0 }));
  await balancer.listen();
  await until('the balancer to discover the forwarder', () => balancer.backends().length === 1);
  t.is(balancer.backends()[0]!.address, address);
  let whole = 0;
  for (let i = 0; i < 20; i++) if (await echoes(balancer.port()!)) whole++;
  t.is(whole, 20);
});

withEtcd('etcd refuses a client without a certificate from its CA, and jumper refuses an etcd its CA did not sign: nothing registers, nothing is discovered, each says why', async (t) => {
  const pki = createPki(t);
  const other = createPki(t, 'other-ca');
  const etcd = await startEtcd(t, { tls: pki, clientCertAuth: true });
  const stranger = other.issueClient('stranger');
  const client = pki.issueClient('jumper');
  const cases: [string, EtcdAccess][] = [
    ['no client certificate', { caFile: pki.ca }],
    ['a client certificate from another CA', { caFile: pki.ca, certFile: stranger.cert, keyFile: stranger.key }],
    ["etcd's certificate not signed by the given CA", { caFile: other.ca, certFile: client.cert, keyFile: client.key }],
  ];
  for (const [label, access] of cases) {
    const registering = captureLogger();
    const { jumper } = await registeredForward(t, etcd, access, registering);
    t.false(jumper.registration!.registered, label);
    const failed = registering.lines.find((l) => l.msg === 'cannot register in etcd yet; retrying');
    t.truthy(failed, `${label}: the registration failure is logged`);
    // The TLS failure itself, not a generic "unavailable".
    t.regex(String(failed?.err), /certificate/i, label);

    const discovering = captureLogger();
    const balancer = createBalancer({ listen: '127.0.0.1:0', discover: etcd.url(PREFIX), etcd: access, logger: discovering });
    await balancer.listen();
    const unreachable = discovering.lines.find((l) => l.msg === 'etcd unreachable: serving the last known backends, reconnecting');
    t.truthy(unreachable, `${label}: the balancer says etcd is unreachable`);
    t.regex(String(unreachable?.err), /certificate/i, label);
    t.deepEqual(balancer.backends(), [], label);
    t.false(await echoes(balancer.port()!), `${label}: no stream gets through`);
    await balancer.close({ drainTimeoutMs: 0 });
    await jumper.close({ drainTimeoutMs: 0 });
  }
  t.deepEqual(await etcd.keys(PREFIX), {});
});

/** Turn on etcd's authentication: root, and a "jumper" user that may only touch PREFIX. Returns a root client. */
async function enableAuth(t: ExecutionContext, etcd: TestEtcd): Promise<Etcd3> {
  const admin = etcd.client;
  await admin.user('root').create('root-secret');
  await admin.role('root').create().catch(() => undefined);
  await admin.user('root').addRole('root');
  const role = await admin.role('jumper').create();
  await role.grant({ permission: 'Readwrite', range: admin.range({ prefix: `${PREFIX}/` }) });
  await admin.user('jumper').create('jumper-secret');
  await admin.user('jumper').addRole('jumper');
  await admin.auth.authEnable({});
  const root = new Etcd3({ hosts: `http://${etcd.endpoint}`, auth: { username: 'root', password: 'root-secret' } });
  t.teardown(() => root.close());
  return root;
}

function passwordFile(t: ExecutionContext, password: string): string {
  const file = join(tempDir(t), 'password');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return file;
}

const registeredKeys = async (root: Etcd3): Promise<string[]> => Object.keys(await root.getAll().prefix(PREFIX).strings()).sort();

withEtcd('etcd authentication: a user limited to the prefix registers with --etcd-password-file; a wrong password registers nothing', async (t) => {
  const etcd = await startEtcd(t);
  const root = await enableAuth(t, etcd);
  const good = passwordFile(t, 'jumper-secret');
  const { address, jumper } = await registeredForward(t, etcd, { user: 'jumper', passwordFile: good });
  t.true(jumper.registration!.registered);
  t.deepEqual(await registeredKeys(root), [`${PREFIX}/${address}`]);

  const balancer = createBalancer({ listen: '127.0.0.1:0', discover: etcd.url(PREFIX), etcd: { user: 'jumper', passwordFile: good } });
  t.teardown(() => balancer.close({ drainTimeoutMs: 0 }));
  await balancer.listen();
  await until('the balancer to discover the forwarder', () => balancer.backends().length === 1);
  t.true(await echoes(balancer.port()!));

  const logger = captureLogger();
  const refused = await registeredForward(t, etcd, { user: 'jumper', passwordFile: passwordFile(t, 'not-the-password') }, logger);
  t.false(refused.jumper.registration!.registered);
  const line = logger.lines.find((l) => l.msg === 'cannot register in etcd yet; retrying');
  t.regex(String(line?.err), /authentication failed|invalid user ID or password/i);
  t.deepEqual(await registeredKeys(root), [`${PREFIX}/${address}`]);
});

/** Established TCP connections from process `pid` to local port `port` (ss, iproute2). */
function connectionsTo(pid: number, port: string): number {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`]).toString();
  return out.split('\n').filter((line) => line.includes(`pid=${pid},`)).length;
}

const hasSs = hasCommand('ss', ['-V']);
if (!skipReason && !hasSs) console.log('discovery-tls: skipping the login-connection test: ss (iproute2) is not installed');

(skipReason || !hasSs ? test.skip : test.serial)('etcd authentication: logins leave no connection behind once the client is closed (etcd3 made a gRPC client per login and never closed it)', async (t) => {
  const etcd = await startEtcd(t);
  await enableAuth(t, etcd);
  const port = etcd.endpoint.split(':')[1]!;
  const loop = fileURLToPath(new URL('./helpers/etcd-login-loop.ts', import.meta.url));
  const cases = [
    ['not-the-password', { refused: 20, succeeded: 0 }],
    ['jumper-secret', { refused: 0, succeeded: 20 }],
  ] as const;
  for (const [password, expected] of cases) {
    const child = spawn(process.execPath, ['--import', 'tsx', loop, etcd.url(PREFIX), 'jumper', password, '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => child.kill('SIGKILL'));
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    t.deepEqual(JSON.parse(line), expected, 'every login was made, and answered as the password deserves');
    // gRPC closes a channel's connection asynchronously; a leaked login channel holds it for 30 minutes.
    let held = connectionsTo(child.pid!, port);
    for (const deadline = Date.now() + 10_000; held > 0 && Date.now() < deadline; held = connectionsTo(child.pid!, port)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    t.is(held, 0, `${password}: connections to etcd still open after close()`);
    child.kill('SIGKILL');
  }
});

withEtcd('etcd authentication with JWT tokens: after the auth store changes (a user added), a lost registration comes back; it does not retry a rejected token for ever', async (t) => {
  // JWT tokens carry the auth store revision they were issued at; etcd refuses them once it moves on.
  const keys = tempDir(t);
  execFileSync('openssl', ['genrsa', '-out', join(keys, 'jwt.key'), '2048'], { stdio: 'ignore' });
  execFileSync('openssl', ['rsa', '-in', join(keys, 'jwt.key'), '-pubout', '-out', join(keys, 'jwt.pub')], { stdio: 'ignore' });
  const etcd = await startEtcd(t, { extraArgs: ['--auth-token', `jwt,pub-key=${join(keys, 'jwt.pub')},priv-key=${join(keys, 'jwt.key')},sign-method=RS256`] });
  const root = await enableAuth(t, etcd);
  const password = passwordFile(t, 'jumper-secret');
  const { address } = await registeredForward(t, etcd, { user: 'jumper', passwordFile: password });
  const key = `${PREFIX}/${address}`;
  t.deepEqual(await registeredKeys(root), [key]);
  // Any change to users or roles makes etcd refuse tokens issued before it (this test's root client's too).
  await root.user('someone-else').create('x');
  const after = new Etcd3({ hosts: `http://${etcd.endpoint}`, auth: { username: 'root', password: 'root-secret' } });
  t.teardown(() => after.close());
  // Take the registration away: the jumper must put it back with a fresh login.
  const { kvs } = await after.getAll().prefix(PREFIX).exec();
  await after.leaseClient.leaseRevoke({ ID: kvs[0]!.lease });
  t.deepEqual(await registeredKeys(after), []);
  await until('the registration to come back', async () => (await registeredKeys(after)).includes(key), 15_000);
  t.deepEqual(await registeredKeys(after), [key]);
});

withEtcd('etcd authentication: a balancer whose etcd restarted (tokens gone) follows registrations made afterwards', async (t) => {
  // Tokens live 1 s and etcd forgets them when it restarts: the watch must not resume on a dead token.
  const etcd = await startEtcd(t, { extraArgs: ['--auth-token-ttl', '1'] });
  const root = await enableAuth(t, etcd);
  const password = passwordFile(t, 'jumper-secret');
  const access = { user: 'jumper', passwordFile: password };
  const first = await registeredForward(t, etcd, access);
  const balancer = createBalancer({ listen: '127.0.0.1:0', discover: etcd.url(PREFIX), etcd: access });
  t.teardown(() => balancer.close({ drainTimeoutMs: 0 }));
  await balancer.listen();
  await until('the first backend', () => balancer.backends().length === 1);

  await etcd.stop();
  await new Promise((r) => setTimeout(r, 1500));
  await etcd.start();
  // The root client may still be failing over to the restarted etcd: a failed read is "not yet".
  await until('the first registration to be back', async () => (await registeredKeys(root).catch(() => [])).length === 1, 15_000);
  const second = await registeredForward(t, etcd, access);
  await until('the balancer to see the second backend', () => balancer.backends().map((b) => b.address).sort().join() === [first.address, second.address].sort().join(), 20_000);
  t.true(await echoes(balancer.port()!));
});

withOpenssl('etcd credentials are checked when the jumper is made: one clear error each, code JUMPER_ERR_INVALID_ARG', (t) => {
  const pki = createPki(t);
  const client = pki.issueClient('jumper');
  const dir = tempDir(t);
  const empty = join(dir, 'empty');
  writeFileSync(empty, '\n');
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');
  const tls = parseEtcdUrl('etcds://127.0.0.1:2379/p');
  const plain = parseEtcdUrl('etcd://127.0.0.1:2379/p');
  const cases: [EtcdAccess, typeof tls, RegExp][] = [
    [{ caFile: pki.ca }, plain, /use an etcds:\/\/ URL/],
    [{ certFile: client.cert }, tls, /etcd-cert and etcd-key go together/],
    [{ certFile: client.cert, keyFile: pki.server.key }, tls, /is not the key of etcd-cert/],
    [{ caFile: join(dir, 'missing.pem') }, tls, /etcd-ca .*missing\.pem: cannot read it \(ENOENT\)/],
    [{ caFile: garbage }, tls, /etcd-ca .*garbage\.pem: not a PEM certificate/],
    [{ certFile: client.cert, keyFile: garbage }, tls, /etcd-key .*: not a PEM private key/],
    [{ user: 'jumper' }, tls, /etcd-user needs etcd-password-file/],
    [{ passwordFile: empty }, tls, /etcd-password-file needs etcd-user/],
    [{ user: 'jumper', passwordFile: empty }, tls, /its first line is empty/],
    [{ user: 'jumper', password: 'x', passwordFile: empty }, tls, /not both/],
  ];
  for (const [access, location, message] of cases) {
    const err = t.throws(() => loadEtcdAccess(access, location), { code: 'JUMPER_ERR_INVALID_ARG' } as never, JSON.stringify(access));
    t.regex(err?.message ?? '', message);
  }
  const ok = loadEtcdAccess({ caFile: pki.ca, certFile: client.cert, keyFile: client.key, user: 'u', password: 'p' }, tls);
  t.deepEqual(ok.credentials?.rootCertificate, readFileSync(pki.ca));
  t.deepEqual(ok.auth, { username: 'u', password: 'p' });
  // Credentials with neither discover nor register would be ignored: refused.
  t.throws(() => createForward({ listen: '127.0.0.1:0', connect: '127.0.0.1:1', etcd: { caFile: pki.ca } }), { code: 'JUMPER_ERR_INVALID_ARG', message: /apply with --discover or --register/ } as never);
});

(cliBuilt && !opensslUnavailableReason() ? test : test.skip)('CLI: etcd credentials without --discover/--register, or wrong ones, exit 2 with one line', async (t) => {
  const pki = createPki(t);
  const run = (args: string[]) =>
    execFileAsync(process.execPath, [JUMPER, ...args], { timeout: 20_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
  const fwd = ['forward', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:1'];
  const cases: [string[], RegExp][] = [
    [[...fwd, '--etcd-ca', pki.ca], /--etcd-ca applies only with --discover or --register/],
    [[...fwd, '--etcd-user', 'u'], /--etcd-user applies only with --discover or --register/],
    [['balance', '--listen', '127.0.0.1:0', '--discover', 'etcd://127.0.0.1:1/p', '--etcd-ca', pki.ca], /use an etcds:\/\/ URL/],
    [['balance', '--listen', '127.0.0.1:0', '--discover', 'etcds://127.0.0.1:1/p', '--etcd-cert', pki.server.cert], /etcd-cert and etcd-key go together/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, pattern, args.join(' '));
    t.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});

withEtcd('jumper run: a reload restarts a link whose etcd certificate changed, and leaves it alone when nothing did', async (t) => {
  const pki = createPki(t);
  const etcd = await startEtcd(t, { tls: pki, clientCertAuth: true });
  const dir = tempDir(t);
  const first = pki.issueClient('jumper-1');
  const cert = join(dir, 'client.pem');
  const key = join(dir, 'client.key');
  copyFileSync(first.cert, cert);
  copyFileSync(first.key, key);
  const provider = await startEchoProvider(t);
  const address = `127.0.0.1:${await freePort()}`;
  const file = join(dir, 'jumper.yaml');
  const link = {
    name: 'db', role: 'forward', listen: address, connect: provider.address,
    register: etcd.url(PREFIX), advertise: address, 'lease-ttl': '2s', 'deregister-delay': '0s',
    'etcd-ca': pki.ca, 'etcd-cert': cert, 'etcd-key': key,
  };
  writeFileSync(file, stringify({ links: [link] }));
  const supervisor = new Supervisor({ file, logger: captureLogger() });
  t.teardown(() => supervisor.stop(0));
  await supervisor.start();
  await until('the link to register', async () => Object.keys(await etcd.keys(PREFIX)).length === 1);
  const leaseOf = async () => (await etcd.client.getAll().prefix(PREFIX).exec()).kvs.map((kv) => kv.lease)[0];
  const firstLease = await leaseOf();

  t.deepEqual(await supervisor.reload(), { added: [], removed: [], changed: [], unchanged: ['db'] });
  const second = pki.issueClient('jumper-2');
  copyFileSync(second.cert, cert);
  copyFileSync(second.key, key);
  t.deepEqual(await supervisor.reload(), { added: [], removed: [], changed: ['db'], unchanged: [] });
  // Registered again by the new instance, with the new certificate: a new lease.
  await until('the restarted link to register again', async () => (await leaseOf()) !== undefined && (await leaseOf()) !== firstLease);
  // A key that no longer matches its certificate refuses the reload; the running link stays.
  copyFileSync(first.key, key);
  t.is(await supervisor.reload(), undefined);
  t.true(await echoes(Number(address.split(':')[1])));
});

(cliBuilt && !skipReason ? test.serial : test.skip)('CLI: jumper forward registers and jumper balance discovers over etcds://; stderr holds nothing but JSON log lines', async (t) => {
  const pki = createPki(t);
  const etcd = await startEtcd(t, { tls: pki, clientCertAuth: true });
  const client = pki.issueClient('jumper');
  const tlsFlags = ['--etcd-ca', pki.ca, '--etcd-cert', client.cert, '--etcd-key', client.key];
  const provider = await startEchoProvider(t);
  const address = `127.0.0.1:${await freePort()}`;
  const forward = startJumper(t, ['forward', '--listen', address, '--connect', provider.address, '--register', etcd.url(PREFIX), '--advertise', address, ...tlsFlags]);
  await forward.waitFor((l) => l.msg === 'registered in etcd');
  const port = await freePort();
  const balancer = startJumper(t, ['balance', '--listen', `127.0.0.1:${port}`, '--discover', etcd.url(PREFIX), ...tlsFlags]);
  await balancer.waitFor((l) => l.msg === 'backend added' && l.backend === address);
  t.true(await echoes(port));
  for (const cli of [forward, balancer]) {
    const stray = cli.stderr().split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));
    t.deepEqual(stray, []);
  }
});
