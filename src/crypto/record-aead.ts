/**
 * One transport record's AEAD (ChaCha20-Poly1305, ad empty, nonce = the
 * record counter; layout in src/proto/record.ts), for the records the JS
 * side seals and opens: the client's ORIGIN record, the server's first
 * records, and every record of the JS pipes. Two backends:
 *
 * - `native`: the addon's sealRecord/openRecord (native/src/record_aead.cc),
 *   one call per record. node:crypto builds a Cipheriv and a KeyObject-backed
 *   context per record, which cost more than sealing a small record does,
 *   and a connection's first records are on its set-up path.
 * - `node`: node:crypto, without the addon (or with JUMPER_NO_NATIVE_CRYPTO=1).
 *
 * Both are OpenSSL, with identical output; the Noise vectors check both.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { BackendChoice, nativeCryptoExports } from './backends.js';
import { chachaNonce } from './nonce.js';

/** A record key prepared for one backend (opaque). */
declare const recordKeyBrand: unique symbol;
export type RecordKey = { readonly [recordKeyBrand]: true };

export interface RecordAead {
  readonly name: 'native' | 'node';
  importKey(key: Uint8Array): RecordKey;
  /** Seal `type || body` as one framed record (length || ciphertext || tag), appended to `out`. */
  seal(key: RecordKey, counter: number, type: number, body: Uint8Array, out: Buffer[]): void;
  /** Open `type || body || tag`: the plaintext, or null when the tag does not verify. */
  open(key: RecordKey, counter: number, ciphertext: Uint8Array): Buffer | null;
}

const TAG_BYTES = 16;
const AEAD = 'chacha20-poly1305';
const AEAD_OPTIONS = { authTagLength: TAG_BYTES } as const;

const nodeAead: RecordAead = {
  name: 'node',
  importKey: (key) => createSecretKey(key) as unknown as RecordKey,
  seal(key, counter, type, body, out) {
    const cipher = createCipheriv(AEAD, key as unknown as KeyObject, chachaNonce(counter), AEAD_OPTIONS);
    // Header: length in clear, then the type byte, encrypted in the same AEAD stream.
    const header = Buffer.allocUnsafe(3);
    header.writeUInt16BE(1 + body.length + TAG_BYTES, 0);
    header[2] = type;
    cipher.update(header.subarray(2)).copy(header, 2);
    out.push(header);
    if (body.length > 0) out.push(cipher.update(body));
    cipher.final();
    out.push(cipher.getAuthTag());
  },
  open(key, counter, ciphertext) {
    const decipher = createDecipheriv(AEAD, key as unknown as KeyObject, chachaNonce(counter), AEAD_OPTIONS);
    const tagStart = ciphertext.length - TAG_BYTES;
    decipher.setAuthTag(ciphertext.subarray(tagStart));
    const plain = decipher.update(ciphertext.subarray(0, tagStart));
    try {
      decipher.final();
    } catch {
      return null;
    }
    return plain;
  },
};

interface NativeRecordAead {
  sealRecord(key: Uint8Array, counter: number, type: number, body: Uint8Array): Buffer;
  openRecord(key: Uint8Array, counter: number, ciphertext: Uint8Array): Buffer | null;
}

function nativeAead(addon: NativeRecordAead): RecordAead {
  return {
    name: 'native',
    importKey: (key) => Uint8Array.from(key) as unknown as RecordKey,
    seal(key, counter, type, body, out) {
      out.push(addon.sealRecord(key as unknown as Uint8Array, counter, type, body));
    },
    open: (key, counter, ciphertext) => addon.openRecord(key as unknown as Uint8Array, counter, ciphertext),
  };
}

const backends = new BackendChoice<RecordAead>(() => {
  const addon = nativeCryptoExports<NativeRecordAead>(['sealRecord', 'openRecord']);
  return addon && nativeAead(addon);
}, nodeAead);

/** The backend records use: native when the addon is built, else node:crypto. Decided once. */
export function recordAead(): RecordAead {
  return backends.get();
}

/** Every backend available here, for tests that prove they agree. */
export function allRecordAeads(): RecordAead[] {
  return backends.all();
}
