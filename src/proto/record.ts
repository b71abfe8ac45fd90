/**
 * Transport records: Noise transport messages framed for a byte stream.
 *
 *   record     = length(2, big-endian) || ciphertext(length)
 *   ciphertext = ChaCha20-Poly1305(key, nonce = counter, ad = empty, type(1) || body) || tag(16)
 *
 * One key and one counter per direction; the counter is the nonce and is
 * never sent, so a record that is dropped, duplicated or reordered fails
 * authentication. Type END carries no body and is the authenticated end of
 * the direction: a stream that stops without it was truncated. Type ABORT
 * tells the peer why the stream is being torn down, so both ends log the
 * same reason.
 *
 * The AEAD is OpenSSL's (src/crypto/record-aead.ts: the addon's one-call
 * seal/open, or node:crypto): it seals ~4x faster than the WebAssembly
 * libsodium on this path, with identical output (the Noise test vectors
 * check every backend).
 */
import { createCipheriv, createSecretKey } from 'node:crypto';
import { recordAead, type RecordAead, type RecordKey } from '../crypto/record-aead.js';
import { BadRecordError, NonceExhaustedError, TamperedError } from '../errors.js';
import { chachaNonce, KEY_LEN, TAG_LEN } from './noise.js';

export const LENGTH_BYTES = 2;
export const TYPE_BYTES = 1;
export const TAG_BYTES = TAG_LEN;
/** Noise's limit on one transport message (§3). */
export const MAX_CIPHERTEXT = 65535;
/** Largest body of one record. */
export const MAX_RECORD_BODY = MAX_CIPHERTEXT - TAG_BYTES - TYPE_BYTES;
export const MIN_CIPHERTEXT = TYPE_BYTES + TAG_BYTES;
/** Noise reserves 2^64-1; we stop far earlier, at what a JS number counts exactly. */
export const MAX_NONCE = Number.MAX_SAFE_INTEGER;

export const enum RecordType {
  /** Stream bytes; an empty body is allowed (the client's liveness proof). */
  Data = 0,
  /** Authenticated end of this direction (TCP half-close). */
  End = 1,
  /** The sender gives up on the whole stream; body = ASCII reason (e.g. provider_refused). */
  Abort = 2,
  /**
   * Client only, first record only: who connected to the client jumper
   * (PROXY v2 family byte + address block). Doubles as the liveness proof.
   */
  Origin = 3,
}

/**
 * The ABORT reason a client sends as the first record of a preconnected
 * wire it retires unused: the server ends it cleanly, without a provider dial.
 */
export const UNUSED_ABORT_REASON = 'unused';

/** Longest reason an ABORT record carries. */
export const MAX_ABORT_REASON = 64;

const AEAD = 'chacha20-poly1305';
const AEAD_OPTIONS = { authTagLength: TAG_BYTES } as const;
const EMPTY = Buffer.alloc(0);

function checkKey(key: Uint8Array): Uint8Array {
  if (key.length !== KEY_LEN) throw new BadRecordError(`record key must be ${KEY_LEN} bytes`);
  return key;
}

/**
 * Raw Noise transport encryption of one message (ad empty), for vectors and
 * tests. The record layer below is the same operation with framing.
 */
export function sealTransport(key: Uint8Array, counter: number, plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv(AEAD, createSecretKey(checkKey(key)), chachaNonce(counter), AEAD_OPTIONS);
  const body = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([body, cipher.getAuthTag()]);
}

/** Seals one direction of a stream into records. */
export class RecordSealer {
  readonly #aead: RecordAead;
  readonly #key: RecordKey;
  #counter = 0;

  /** @param aead backend (default: recordAead()); tests run every one. */
  constructor(key: Uint8Array, aead: RecordAead = recordAead()) {
    this.#aead = aead;
    this.#key = aead.importKey(checkKey(key));
  }

  /** Records sealed so far. */
  get count(): number {
    return this.#counter;
  }

  /**
   * Seal `body` (any length) as DATA records, appending the wire buffers to
   * `out` (to be written with cork/writev). Large bodies are split evenly so
   * a 64 KiB read does not become one full record plus a tiny one.
   */
  sealData(body: Buffer, out: Buffer[]): void {
    if (body.length <= MAX_RECORD_BODY) {
      this.#seal(RecordType.Data, body, out);
      return;
    }
    const records = Math.ceil(body.length / MAX_RECORD_BODY);
    const size = Math.ceil(body.length / records);
    for (let offset = 0; offset < body.length; offset += size) {
      this.#seal(RecordType.Data, body.subarray(offset, offset + size), out);
    }
  }

  /** Seal the END record of this direction. */
  sealEnd(out: Buffer[]): void {
    this.#seal(RecordType.End, EMPTY, out);
  }

  /** Seal the ORIGIN record (must be this direction's first record). */
  sealOrigin(body: Buffer, out: Buffer[]): void {
    if (this.#counter !== 0) throw new BadRecordError('ORIGIN must be the first record');
    this.#seal(RecordType.Origin, body, out);
  }

  /** Seal an ABORT record carrying a short reason code. */
  sealAbort(reason: string, out: Buffer[]): void {
    const text = Buffer.from(reason.replace(/[^a-z0-9_:.-]/gi, '_').slice(0, MAX_ABORT_REASON), 'ascii');
    this.#seal(RecordType.Abort, text, out);
  }

  #seal(type: RecordType, body: Buffer, out: Buffer[]): void {
    if (this.#counter >= MAX_NONCE) throw new NonceExhaustedError('record counter exhausted; reconnect');
    this.#aead.seal(this.#key, this.#counter++, type, body, out);
  }
}

/** What the opener found in the wire bytes. */
export interface RecordSink {
  /** An authenticated DATA body (may be empty). */
  onData(body: Buffer): void;
  /** The authenticated END record. */
  onEnd(): void;
  /** The authenticated ABORT record with the peer's reason. */
  onAbort(reason: string): void;
  /** The ORIGIN record (only ever the first record); a sink without this refuses it. */
  onOrigin?(body: Buffer): void;
}

/**
 * Opens one direction of a stream: feed it wire bytes in any chunking; it
 * calls the sink for each authenticated record, in order. Nothing reaches
 * the sink before its tag is verified.
 */
export class RecordOpener {
  readonly #aead: RecordAead;
  readonly #key: RecordKey;
  #counter = 0;
  /** Bytes of an incomplete record, kept as received. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #ended = false;

  /** @param aead backend (default: recordAead()); tests run every one. */
  constructor(key: Uint8Array, aead: RecordAead = recordAead()) {
    this.#aead = aead;
    this.#key = aead.importKey(checkKey(key));
  }

  /** True once the END record was opened. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Records opened so far. */
  get count(): number {
    return this.#counter;
  }

  /** Hand over (and forget) the bytes of an incomplete record, e.g. to the native pump. */
  takePending(): Buffer {
    const pending = this.#pendingBytes === 0 ? Buffer.alloc(0) : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return pending;
  }

  /** Bytes held waiting for the rest of a record. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Consume wire bytes.
   * @throws TamperedError (JUMPER_ERR_TAMPERED) when a record fails authentication;
   *         BadRecordError (JUMPER_ERR_BAD_RECORD) for an impossible length, an unknown type,
   *         or bytes after END.
   */
  push(chunk: Buffer, sink: RecordSink): void {
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      const need = this.#recordLength();
      if (need === 0 || this.#pendingBytes < need) return;
      chunk = Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#ended) throw new BadRecordError('bytes after the end-of-stream record');
      const available = chunk.length - offset;
      if (available < LENGTH_BYTES) break;
      const length = chunk.readUInt16BE(offset);
      if (length < MIN_CIPHERTEXT) throw new BadRecordError(`record length ${length} is below the minimum ${MIN_CIPHERTEXT}`);
      if (available < LENGTH_BYTES + length) break;
      const start = offset + LENGTH_BYTES;
      offset = start + length;
      this.#open(chunk.subarray(start, offset), sink);
    }
    if (offset < chunk.length) {
      // Keep a view, not a copy: the chunk is ours once Node handed it over.
      const rest = chunk.subarray(offset);
      this.#pending.push(rest);
      this.#pendingBytes = rest.length;
    }
  }

  /** Total wire length of the pending record, or 0 while its length is unknown. */
  #recordLength(): number {
    const first = this.#pending[0]!;
    let length: number;
    if (first.length >= LENGTH_BYTES) length = first.readUInt16BE(0);
    else if (this.#pendingBytes >= LENGTH_BYTES) length = (first[0]! << 8) | this.#pending[1]![0]!;
    else return 0;
    if (length < MIN_CIPHERTEXT) throw new BadRecordError(`record length ${length} is below the minimum ${MIN_CIPHERTEXT}`);
    return LENGTH_BYTES + length;
  }

  #open(ciphertext: Buffer, sink: RecordSink): void {
    if (this.#counter >= MAX_NONCE) throw new NonceExhaustedError('record counter exhausted; reconnect');
    const plain = this.#aead.open(this.#key, this.#counter, ciphertext);
    if (plain === null) {
      throw new TamperedError(`record ${this.#counter} failed authentication (tampered, reordered, replayed or wrong key)`);
    }
    this.#counter++;
    const type = plain[0];
    if (type === RecordType.Data) {
      sink.onData(plain.subarray(TYPE_BYTES));
    } else if (type === RecordType.End) {
      if (plain.length !== TYPE_BYTES) throw new BadRecordError('end-of-stream record carries a body');
      this.#ended = true;
      sink.onEnd();
    } else if (type === RecordType.Abort) {
      const reason = plain.subarray(TYPE_BYTES, TYPE_BYTES + MAX_ABORT_REASON).toString('ascii').replace(/[^a-z0-9_:.-]/gi, '_');
      this.#ended = true;
      sink.onAbort(reason || 'unspecified');
    } else if (type === RecordType.Origin && this.#counter === 1 && sink.onOrigin) {
      sink.onOrigin(plain.subarray(TYPE_BYTES));
    } else {
      throw new BadRecordError(type === RecordType.Origin ? 'ORIGIN record where it is not allowed' : `unknown record type ${type}`);
    }
  }
}
