/**
 * Pre-shared key files.
 *
 * A key file holds secret bytes (jumper-keygen writes 32 random bytes). Like
 * spiped, the whole file content is the secret, so a spiped key file works
 * here and a jumper key file works for spiped (which SHA-256s the file).
 * What the protocol uses is never the raw file but values derived from it by
 * domain-separated keyed BLAKE2b, so one file can feed several protocols
 * without the derived keys ever being related.
 */
import { createHash } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import { loadSodium, sodium, wipe } from '../crypto/sodium.js';
import { KeyExistsError, KeyFileError, KeyPermissionsError } from '../errors.js';

/** Bytes of a newly generated key. */
export const KEY_BYTES = 32;
/** Shorter files are refused: they cannot hold 128 bits of entropy with margin. */
export const MIN_KEY_FILE_BYTES = 32;
/** Larger files are refused: a key file is not a place for data. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Bytes of the Noise pre-shared key. */
export const PSK_BYTES = 32;
const FINGERPRINT_BYTES = 8;
const KEY_FILE_MODE = 0o600;
/** Group/other permission bits: any of them set means others may read the key. */
const UNSAFE_MODE_BITS = 0o077;

// BLAKE2b keys used as domain separators (libsodium wants 16..64 bytes).
const PSK_DOMAIN = new TextEncoder().encode('jumper/1 noise psk');
const FINGERPRINT_DOMAIN = new TextEncoder().encode('jumper/1 key fingerprint');

/** Key material derived from a key file; holds no copy of the file itself. */
export interface TunnelKey {
  /** The Noise PSK for protocol jumper/1. */
  readonly psk: Uint8Array;
  /** SHA-256 of the file, which is what spiped uses as its key (for --protocol spiped). */
  readonly spipedKey: Uint8Array;
  /** Short, non-secret identifier safe to log, e.g. `3f9a-01c2-77de-b410`. */
  readonly fingerprint: string;
  /** Where it was read from, if from a file. */
  readonly source?: string;
}

export interface ReadKeyOptions {
  /** Accept a key file that group or others can read (default false). */
  allowInsecurePermissions?: boolean;
}

function formatFingerprint(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex');
  return hex.match(/.{4}/g)!.join('-');
}

/**
 * Derive the tunnel key from secret bytes (the content of a key file).
 * The input is not modified; callers wipe it. libsodium must be loaded.
 * @throws KeyFileError (JUMPER_ERR_KEY_FILE) when shorter than MIN_KEY_FILE_BYTES.
 */
export function deriveKeySync(secret: Uint8Array, source?: string): TunnelKey {
  if (secret.length < MIN_KEY_FILE_BYTES) {
    const where = source ? `key file ${source}` : 'key';
    const what = secret.length === 0 ? 'is empty' : `is too short (${secret.length} bytes)`;
    throw new KeyFileError(`${where} ${what}: need at least ${MIN_KEY_FILE_BYTES} bytes; create one with jumper-keygen`);
  }
  const na = sodium();
  const psk = na.crypto_generichash(PSK_BYTES, secret, PSK_DOMAIN);
  const fingerprint = formatFingerprint(na.crypto_generichash(FINGERPRINT_BYTES, secret, FINGERPRINT_DOMAIN));
  const spipedKey = new Uint8Array(createHash('sha256').update(secret).digest());
  return source === undefined ? { psk, spipedKey, fingerprint } : { psk, spipedKey, fingerprint, source };
}

/** {@link deriveKeySync} after making sure libsodium is loaded. */
export async function deriveKey(secret: Uint8Array, source?: string): Promise<TunnelKey> {
  await loadSodium();
  return deriveKeySync(secret, source);
}

/**
 * Read and derive a key file.
 * @throws KeyFileError when missing, unreadable, empty, too short or too large;
 *         KeyPermissionsError (JUMPER_ERR_KEY_PERMISSIONS) when group/others may read it.
 */
export async function readKeyFile(path: string, options: ReadKeyOptions = {}): Promise<TunnelKey> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, fsConstants.O_RDONLY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be opened (${code})`;
    throw new KeyFileError(`key file ${path} ${why}`, { cause: err, errno: code ?? 'EIO', syscall: 'open' });
  }
  let secret: Buffer | undefined;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new KeyFileError(`key file ${path} is not a regular file`);
    if ((stat.mode & UNSAFE_MODE_BITS) !== 0 && !options.allowInsecurePermissions) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyPermissionsError(
        `key file ${path} has mode ${mode}: group or others can read it; run "chmod 600 ${path}" (or pass --allow-insecure-key to accept it)`,
      );
    }
    if (stat.size > MAX_KEY_FILE_BYTES) {
      throw new KeyFileError(`key file ${path} is too large (${stat.size} bytes; at most ${MAX_KEY_FILE_BYTES})`);
    }
    secret = await handle.readFile();
    return await deriveKey(secret, path);
  } finally {
    wipe(secret);
    await handle.close();
  }
}

/** New random key bytes from libsodium's CSPRNG. */
export async function generateKeyBytes(): Promise<Uint8Array> {
  const na = await loadSodium();
  return na.randombytes_buf(KEY_BYTES);
}

export interface WriteKeyOptions {
  /** Replace an existing file (default false). */
  force?: boolean;
}

/**
 * Generate a key and write it to `path` with mode 0600.
 * @returns the derived key (its fingerprint is safe to print).
 * @throws KeyExistsError (JUMPER_ERR_KEY_EXISTS) when the file exists and force is not set;
 *         KeyFileError when it cannot be written.
 */
export async function writeNewKeyFile(path: string, options: WriteKeyOptions = {}): Promise<TunnelKey> {
  const secret = await generateKeyBytes();
  try {
    const flags = options.force ? 'w' : 'wx';
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(path, flags, KEY_FILE_MODE);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new KeyExistsError(`key file ${path} already exists; pass --force to overwrite it`);
      throw new KeyFileError(`cannot write key file ${path} (${code})`, { cause: err, errno: code ?? 'EIO', syscall: 'open' });
    }
    try {
      // An existing file keeps its old mode on open(); force 0600 explicitly.
      await handle.chmod(KEY_FILE_MODE);
      await handle.truncate(0);
      await handle.write(secret, 0, secret.length, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return await deriveKey(secret, path);
  } finally {
    wipe(secret);
  }
}

/** Generate a key, returning its bytes (for `jumper-keygen -`) and derived key. */
export async function generateKey(): Promise<{ secret: Uint8Array; key: TunnelKey }> {
  const secret = await generateKeyBytes();
  return { secret, key: await deriveKey(secret) };
}
