/**
 * Key handling at the CLI: unsafe key files are refused with a message that
 * names the override, empty and short ones are refused, and the key bytes
 * (raw, hex, base64) never appear in any log line or error message, even at
 * debug level through handshakes, failures and a SIGHUP reload.
 * (keys.test.ts covers the library side.)
 */
import test from 'ava';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, deriveKey } from '../src/index.js';
import { startClientHandshake } from '../src/proto/handshake.js';
import { makeKeyFile, spawnJumper } from './helpers/child-jumper.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { runJumperSrc } from './helpers/run-cli.js';

test('a group- or world-readable key file is refused; the message names --allow-insecure-key', async (t) => {
  const { path } = await makeKeyFile(t);
  for (const mode of [0o640, 0o604]) {
    chmodSync(path, mode);
    const result = await runJumperSrc(['server', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:9', '--key', path, '--log-format', 'json']);
    t.not(result.code, 0);
    t.regex(result.stderr, /--allow-insecure-key/);
    t.regex(result.stderr, /chmod 600/);
  }
});

test('empty and short key files are refused by the CLI with a clear line', async (t) => {
  const { dir } = await makeKeyFile(t);
  for (const [name, bytes] of [['empty', Buffer.alloc(0)], ['short', randomBytes(16)]] as const) {
    const file = join(dir, name);
    writeFileSync(file, bytes, { mode: 0o600 });
    const result = await runJumperSrc(['client', '--listen', '127.0.0.1:0', '--connect', '127.0.0.1:9', '--key', file, '--log-format', 'json']);
    t.not(result.code, 0);
    t.regex(result.stderr, name === 'empty' ? /is empty/ : /too short \(16 bytes\)/);
  }
});

test('key bytes appear in no log line or error message (debug level, failures, SIGHUP reload)', async (t) => {
  const provider = await startEchoProvider(t);
  const { path, key } = await makeKeyFile(t);
  const secret = readFileSync(path);
  const server = await spawnJumper(t, ['server', '--listen', '127.0.0.1:0', '--connect', provider.address, '--key', path, '--log-level', 'debug']);
  const client = await spawnJumper(t, ['client', '--listen', '127.0.0.1:0', '--connect', `127.0.0.1:${server.port}`, '--key', path, '--log-level', 'debug']);
  // A good stream, a wrong-key stream, garbage, a truncated hello.
  const body = randomBytes(50_000);
  t.is(sha256((await exchange({ port: client.port }, body)).received), sha256(body));
  const wrong = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${server.port}`, key: await deriveKey(randomBytes(32)) });
  await wrong.listen();
  t.teardown(() => wrong.close({ drainTimeoutMs: 0 }));
  await exchange({ port: wrong.port()! }, Buffer.from('x'));
  await exchange({ port: server.port }, randomBytes(100));
  await exchange({ port: server.port }, startClientHandshake(key).hello.subarray(0, 30));
  // A reload that fails (unsafe mode), then one that works.
  chmodSync(path, 0o644);
  server.child.kill('SIGHUP');
  await server.waitFor((l) => String(l.msg).includes('key reload failed'));
  chmodSync(path, 0o600);
  server.child.kill('SIGHUP');
  await server.waitFor((l) => String(l.msg).includes('key reloaded'));
  await server.waitFor(() => server.logs.filter((l) => l.msg === 'connection failed').length >= 3);

  const logs = server.stderr() + client.stderr();
  t.true(logs.length > 1000);
  const forms = new Set<string>();
  for (const bytes of [secret, Buffer.from(key.psk), Buffer.from(key.spipedKey)]) {
    forms.add(bytes.toString('hex'));
    forms.add(bytes.toString('hex').toUpperCase());
    forms.add(bytes.toString('base64').slice(0, 40));
    forms.add(bytes.toString('base64url').slice(0, 40));
    forms.add(bytes.subarray(0, 16).toString('hex'));
    forms.add(bytes.toString('latin1'));
    forms.add(JSON.stringify(Array.from(bytes.subarray(0, 8))).slice(1, -1));
  }
  for (const form of forms) t.false(logs.includes(form), `a form of the key appears in the logs: ${form.slice(0, 12)}…`);
});
