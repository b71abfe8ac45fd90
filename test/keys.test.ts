/**
 * Key files: generation, permissions, sizes, fingerprints, spiped compatibility.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveKey, readKeyFile, writeNewKeyFile } from '../src/index.js';

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-keys-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a new key file has 32 bytes, mode 0600, and reads back with the same fingerprint', async (t) => {
  const file = join(tempDir(t), 'k');
  const written = await writeNewKeyFile(file);
  t.is(statSync(file).size, 32);
  t.is(statSync(file).mode & 0o777, 0o600);
  const read = await readKeyFile(file);
  t.is(read.fingerprint, written.fingerprint);
  t.regex(read.fingerprint, /^[0-9a-f]{4}(-[0-9a-f]{4}){3}$/);
  t.deepEqual(Buffer.from(read.psk), Buffer.from(written.psk));
});

test('an existing key file is not overwritten without force; with force it is, and gets mode 0600', async (t) => {
  const file = join(tempDir(t), 'k');
  writeFileSync(file, 'old content that is long enough to be a key!!', { mode: 0o644 });
  await t.throwsAsync(writeNewKeyFile(file), { code: 'JUMPER_ERR_KEY_EXISTS' } as never);
  t.is(readFileSync(file, 'utf8'), 'old content that is long enough to be a key!!');
  await writeNewKeyFile(file, { force: true });
  t.is(statSync(file).size, 32);
  t.is(statSync(file).mode & 0o777, 0o600);
});

test('a group- or world-readable key file is refused unless allowed', async (t) => {
  const file = join(tempDir(t), 'k');
  writeFileSync(file, randomBytes(32));
  chmodSync(file, 0o644);
  const err = await t.throwsAsync(readKeyFile(file));
  t.is((err as { code?: string }).code, 'JUMPER_ERR_KEY_PERMISSIONS');
  t.regex(err!.message, /chmod 600/);
  await t.notThrowsAsync(readKeyFile(file, { allowInsecurePermissions: true }));
});

test('empty, short, missing and directory key files are refused with JUMPER_ERR_KEY_FILE', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'empty'), '', { mode: 0o600 });
  writeFileSync(join(dir, 'short'), randomBytes(16), { mode: 0o600 });
  for (const name of ['empty', 'short', 'missing', '.']) {
    const err = await t.throwsAsync(readKeyFile(join(dir, name)));
    t.is((err as { code?: string }).code, 'JUMPER_ERR_KEY_FILE', name);
  }
  const short = await t.throwsAsync(readKeyFile(join(dir, 'short')));
  t.regex(short!.message, /too short \(16 bytes\)/);
});

test('key bytes never appear in the derived key or its error messages', async (t) => {
  const secret = randomBytes(32);
  const key = await deriveKey(secret);
  const shown = JSON.stringify({ ...key, psk: undefined, spipedKey: undefined });
  t.false(shown.includes(secret.toString('hex')));
  t.notDeepEqual(Buffer.from(key.psk), secret);
  const err = await t.throwsAsync(deriveKey(secret.subarray(0, 10)));
  t.false(err!.message.includes(secret.subarray(0, 10).toString('hex')));
});

test('the spiped key is SHA-256 of the whole file, as spiped computes it', async (t) => {
  const secret = randomBytes(32);
  const key = await deriveKey(secret);
  t.deepEqual(Buffer.from(key.spipedKey), createHash('sha256').update(secret).digest());
});
