/**
 * Record-layer micro-benchmark: AEAD seal and open of 64 KiB and 1 KiB
 * records, in MB/s of plaintext, single thread, no I/O.
 *
 *   node --import tsx bench/record.ts [--quick]
 *
 * Contenders are `RecordCodec`s: a pair of factories making a stateful
 * sealer and opener for one direction of a stream (the nonce is a counter,
 * as in the jumper protocol). To benchmark another implementation, add one
 * entry to `codecs()` — nothing else changes. jumper's own record layer
 * (src/proto/record.ts) is loaded dynamically and included when it loads;
 * if it is mid-edit and does not, it is skipped with a notice.
 */

import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sodium from 'libsodium-wrappers';
import { KiB, MB } from './lib/config.js';

/** Seal one record; returns its wire bytes (possibly as several buffers, as for writev). */
export type Seal = (plaintext: Buffer) => Buffer | Buffer[];
/** Open the wire bytes of one record (as one buffer); returns the plaintext. */
export type Open = (wire: Buffer) => Buffer | Uint8Array;

export interface RecordCodec {
  readonly name: string;
  newSealer(key: Buffer): Seal;
  newOpener(key: Buffer): Open;
}

const RECORD_SIZES = [64 * KiB, 1 * KiB] as const;
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
/** Per (codec, size, operation): measure for this long, or at most this many records. */
const DURATION_MS = { full: 1_000, quick: 250 } as const;
const WARMUP_MS = { full: 200, quick: 50 } as const;
const MAX_RECORDS = 5_000_000;
/** Records pre-sealed per batch for the open benchmark (bounded in bytes too). */
const OPEN_BATCH_BYTES = 16 * 1024 * KiB;
const OPEN_BATCH_MAX_RECORDS = 16_384;

/** Noise-style nonce: 4 zero bytes, then the 64-bit counter little-endian. */
function nonceFor(counter: number, out: Buffer): Buffer {
  out.writeUInt32LE(0, 0);
  out.writeBigUInt64LE(BigInt(counter), 4);
  return out;
}

type NodeAead = 'chacha20-poly1305' | 'aes-256-gcm';
const AEAD_OPTIONS = { authTagLength: TAG_BYTES } as const;

// One call per literal so TypeScript picks the AEAD overload (with getAuthTag).
const newCipher = (alg: NodeAead, key: KeyObject, nonce: Buffer) =>
  alg === 'aes-256-gcm' ? createCipheriv(alg, key, nonce, AEAD_OPTIONS) : createCipheriv(alg, key, nonce, AEAD_OPTIONS);
const newDecipher = (alg: NodeAead, key: KeyObject, nonce: Buffer) =>
  alg === 'aes-256-gcm'
    ? createDecipheriv(alg, key, nonce, AEAD_OPTIONS)
    : createDecipheriv(alg, key, nonce, AEAD_OPTIONS);

function nodeAead(name: string, algorithm: NodeAead): RecordCodec {
  return {
    name,
    newSealer(key) {
      const k: KeyObject = createSecretKey(key);
      const nonce = Buffer.alloc(NONCE_BYTES);
      let counter = 0;
      return (plaintext) => {
        const c = newCipher(algorithm, k, nonceFor(counter++, nonce));
        const body = c.update(plaintext);
        c.final();
        return [body, c.getAuthTag()];
      };
    },
    newOpener(key) {
      const k: KeyObject = createSecretKey(key);
      const nonce = Buffer.alloc(NONCE_BYTES);
      let counter = 0;
      return (wire) => {
        const d = newDecipher(algorithm, k, nonceFor(counter++, nonce));
        d.setAuthTag(wire.subarray(wire.length - TAG_BYTES));
        const out = d.update(wire.subarray(0, wire.length - TAG_BYTES));
        d.final();
        return out;
      };
    },
  };
}

const libsodiumChacha: RecordCodec = {
  name: 'libsodium chacha20-poly1305-ietf (wasm)',
  newSealer(key) {
    const nonce = Buffer.alloc(NONCE_BYTES);
    let counter = 0;
    return (plaintext) =>
      Buffer.from(
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, null, null, nonceFor(counter++, nonce), key),
      );
  },
  newOpener(key) {
    const nonce = Buffer.alloc(NONCE_BYTES);
    let counter = 0;
    return (wire) => sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, wire, null, nonceFor(counter++, nonce), key);
  },
};

/** The subset of src/proto/record.ts this benchmark uses. */
interface JumperRecordModule {
  RecordSealer: new (key: Uint8Array) => { sealData(body: Buffer, out: Buffer[]): void };
  RecordOpener: new (key: Uint8Array) => {
    push(chunk: Buffer, sink: { onData(b: Buffer): void; onEnd(): void; onAbort(r: string): void }): void;
  };
}

async function jumperRecordCodec(): Promise<RecordCodec | string> {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'proto', 'record.ts');
  let mod: JumperRecordModule;
  try {
    mod = (await import(pathToFileURL(file).href)) as JumperRecordModule;
  } catch (err) {
    return `src/proto/record.ts did not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  if (typeof mod.RecordSealer !== 'function' || typeof mod.RecordOpener !== 'function') {
    return 'src/proto/record.ts has no RecordSealer/RecordOpener';
  }
  return {
    name: 'jumper RecordSealer/RecordOpener (node:crypto, framed)',
    newSealer(key) {
      const sealer = new mod.RecordSealer(key);
      return (plaintext) => {
        const out: Buffer[] = [];
        sealer.sealData(plaintext, out);
        return out;
      };
    },
    newOpener(key) {
      const opener = new mod.RecordOpener(key);
      const parts: Buffer[] = [];
      const sink = { onData: (b: Buffer) => void parts.push(b), onEnd: () => undefined, onAbort: () => undefined };
      return (wire) => {
        parts.length = 0;
        opener.push(wire, sink);
        return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      };
    },
  };
}

/** All contenders; add an entry here to benchmark another implementation. */
async function codecs(): Promise<{ list: RecordCodec[]; notices: string[] }> {
  const list: RecordCodec[] = [
    nodeAead('node:crypto chacha20-poly1305', 'chacha20-poly1305'),
    libsodiumChacha,
    nodeAead('node:crypto aes-256-gcm (reference)', 'aes-256-gcm'),
  ];
  const notices: string[] = [];
  const jumper = await jumperRecordCodec();
  if (typeof jumper === 'string') notices.push(`skipped jumper record layer: ${jumper}`);
  else list.push(jumper);
  return { list, notices };
}

const toWire = (sealed: Buffer | Buffer[]): Buffer => (Array.isArray(sealed) ? Buffer.concat(sealed) : sealed);

function checkRoundTrip(codec: RecordCodec, size: number): void {
  const key = randomBytes(32);
  const seal = codec.newSealer(key);
  const open = codec.newOpener(key);
  for (let i = 0; i < 3; i++) {
    const plain = randomBytes(size);
    const back = open(toWire(seal(plain)));
    if (!Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(plain)) {
      throw new Error(`${codec.name}: round trip failed at ${size} bytes`);
    }
  }
}

/** Seal the same plaintext repeatedly for `ms`; returns MB/s of plaintext. */
function benchSeal(codec: RecordCodec, size: number, ms: number): number {
  const seal = codec.newSealer(randomBytes(32));
  const plain = randomBytes(size);
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1_000_000n;
  while (n < MAX_RECORDS) {
    for (let i = 0; i < 16; i++) seal(plain);
    n += 16;
    if (process.hrtime.bigint() >= end) break;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (n * size) / MB / s;
}

/** Open pre-sealed batches (sealing is not timed) for about `ms`; MB/s of plaintext. */
function benchOpen(codec: RecordCodec, size: number, ms: number): number {
  const key = randomBytes(32);
  const plain = randomBytes(size);
  const batch = Math.max(1, Math.min(OPEN_BATCH_MAX_RECORDS, Math.floor(OPEN_BATCH_BYTES / size)));
  let records = 0;
  let elapsedNs = 0n;
  const budgetNs = BigInt(ms) * 1_000_000n;
  while (elapsedNs < budgetNs && records < MAX_RECORDS) {
    const seal = codec.newSealer(key);
    const wires = Array.from({ length: batch }, () => toWire(seal(plain)));
    const open = codec.newOpener(key);
    const t0 = process.hrtime.bigint();
    for (const w of wires) {
      open(w);
      records++;
      if ((records & 15) === 0 && elapsedNs + (process.hrtime.bigint() - t0) >= budgetNs) break;
    }
    elapsedNs += process.hrtime.bigint() - t0;
  }
  return (records * size) / MB / (Number(elapsedNs) / 1e9);
}

interface RecordResult {
  codec: string;
  recordBytes: number;
  sealMBps: number;
  openMBps: number;
}

async function main(): Promise<void> {
  const profile = process.argv.includes('--quick') ? 'quick' : 'full';
  await sodium.ready;
  const { list, notices } = await codecs();
  for (const n of notices) process.stderr.write(`[record] ${n}\n`);
  const results: RecordResult[] = [];
  for (const size of RECORD_SIZES) {
    for (const codec of list) {
      checkRoundTrip(codec, size);
      benchSeal(codec, size, WARMUP_MS[profile]);
      benchOpen(codec, size, WARMUP_MS[profile]);
      results.push({
        codec: codec.name,
        recordBytes: size,
        sealMBps: benchSeal(codec, size, DURATION_MS[profile]),
        openMBps: benchOpen(codec, size, DURATION_MS[profile]),
      });
    }
  }
  const nameWidth = Math.max(5, ...results.map((r) => r.codec.length));
  const lines = [
    `record layer (${profile}), ${process.version}, MB/s = 10^6 bytes of plaintext per second, one thread`,
    `${'codec'.padEnd(nameWidth)}  ${'record'.padStart(7)}  ${'seal MB/s'.padStart(9)}  ${'open MB/s'.padStart(9)}`,
    `${'-'.repeat(nameWidth)}  -------  ---------  ---------`,
    ...results.map(
      (r) =>
        `${r.codec.padEnd(nameWidth)}  ${`${r.recordBytes / KiB} KiB`.padStart(7)}  ` +
        `${r.sealMBps.toFixed(0).padStart(9)}  ${r.openMBps.toFixed(0).padStart(9)}`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`[record] fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
