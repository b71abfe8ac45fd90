/**
 * spiped 1.6 data packets (DESIGN.md, proto_crypt.c: proto_crypt_enc/dec).
 *
 *   padded    = M || 0x00 * (1024 - |M|) || be32(|M|)        (1 <= |M| <= 1024)
 *   encrypted = AES-256-CTR(E, padded), counter block i = be64(packet#) || be64(i)
 *   packet    = encrypted || HMAC-SHA256(H, encrypted || be64(packet#))   = 1060 bytes
 *
 * packet# starts at 0 in each direction and is never sent, so a dropped,
 * replayed or reordered packet fails its HMAC. A zero-length message is
 * invalid (spiped rejects it); the end of a direction is a plain TCP FIN.
 *
 * The CTR keystream comes from one long-lived AES-256-ECB context per
 * direction fed with counter blocks (node:crypto cannot re-key a CTR context
 * with a new IV), so a read chunk costs one keystream call, one output buffer
 * and one HMAC per packet, never a cipher context per packet.
 */
import { createCipheriv, createHmac, timingSafeEqual, type Cipher } from 'node:crypto';
import { BadRecordError, InvalidArgumentError, NonceExhaustedError, TamperedError } from '../../errors.js';
import type { DirectionKeys } from './handshake.js';

/** Largest message one packet carries. */
export const MAX_PAYLOAD_BYTES = 1024;
/** The big-endian message length after the padding. */
export const LENGTH_BYTES = 4;
/** Encrypted part: padded message and its length. */
export const CIPHERTEXT_BYTES = MAX_PAYLOAD_BYTES + LENGTH_BYTES;
/** HMAC-SHA256 tag. */
export const MAC_BYTES = 32;
/** Every packet on the wire has exactly this size. */
export const PACKET_BYTES = CIPHERTEXT_BYTES + MAC_BYTES;
/** Bytes of the packet number in the counter block and under the HMAC. */
export const PACKET_NUMBER_BYTES = 8;
/** spiped counts in a uint64; a JS number counts exactly up to here (9 EB of traffic). */
export const MAX_PACKET_NUMBER = Number.MAX_SAFE_INTEGER;

const AES_BLOCK_BYTES = 16;
/** Counter blocks per packet: 1028 bytes need 65 blocks (the last one partly). */
const BLOCKS_PER_PACKET = Math.ceil(CIPHERTEXT_BYTES / AES_BLOCK_BYTES);
/** Keystream stride per packet in the batched keystream buffer. */
const KEYSTREAM_STRIDE = BLOCKS_PER_PACKET * AES_BLOCK_BYTES;
const UINT32_RANGE = 2 ** 32;
const KEY_BYTES = 32;
const EMPTY: Buffer = Buffer.alloc(0);

const WORD_BYTES = 4;

/** A 32-bit view of the whole of `buf`, or undefined when it is not word-aligned. */
function wordsOf(buf: Buffer): Int32Array | undefined {
  if (buf.byteOffset % WORD_BYTES !== 0) return undefined;
  return new Int32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / WORD_BYTES));
}

/**
 * dst[d .. d+CIPHERTEXT_BYTES) ^= ks[k ..): by words when both views exist
 * (d and k are multiples of 4 here), else by bytes.
 */
function xorCiphertext(dst: Buffer, dstWords: Int32Array | undefined, d: number, ks: Buffer, ksWords: Int32Array | undefined, k: number): void {
  if (dstWords && ksWords) {
    const dw = d / WORD_BYTES;
    const kw = k / WORD_BYTES;
    for (let i = 0; i < CIPHERTEXT_BYTES / WORD_BYTES; i++) dstWords[dw + i]! ^= ksWords[kw + i]!;
  } else {
    for (let i = 0; i < CIPHERTEXT_BYTES; i++) dst[d + i]! ^= ks[k + i]!;
  }
}

/** AES-256-CTR keystream for whole packets, batched. */
class PacketKeystream {
  readonly #ecb: Cipher;
  /** Counter blocks for `#capacity` packets; the block-index halves never change. */
  #counters: Buffer = EMPTY;
  #capacity = 0;

  constructor(cipherKey: Uint8Array) {
    if (cipherKey.length !== KEY_BYTES) throw new InvalidArgumentError(`spiped cipher key must be ${KEY_BYTES} bytes`);
    this.#ecb = createCipheriv('aes-256-ecb', cipherKey, null);
    this.#ecb.setAutoPadding(false);
  }

  #grow(packets: number): void {
    if (packets <= this.#capacity) return;
    const capacity = Math.max(packets, this.#capacity * 2);
    const counters = Buffer.alloc(capacity * KEYSTREAM_STRIDE);
    for (let p = 0; p < capacity; p++) {
      for (let b = 0; b < BLOCKS_PER_PACKET; b++) {
        // be64(block index): the high half stays zero.
        counters.writeUInt32BE(b, p * KEYSTREAM_STRIDE + b * AES_BLOCK_BYTES + 12);
      }
    }
    this.#counters = counters;
    this.#capacity = capacity;
  }

  /** Keystream for packets first .. first+count-1, KEYSTREAM_STRIDE bytes each. */
  generate(first: number, count: number): Buffer {
    this.#grow(count);
    const counters = this.#counters;
    for (let p = 0; p < count; p++) {
      const packet = first + p;
      const hi = Math.floor(packet / UINT32_RANGE);
      const lo = packet >>> 0;
      for (let b = 0; b < BLOCKS_PER_PACKET; b++) {
        const at = p * KEYSTREAM_STRIDE + b * AES_BLOCK_BYTES;
        counters.writeUInt32BE(hi, at);
        counters.writeUInt32BE(lo, at + 4);
      }
    }
    return this.#ecb.update(counters.subarray(0, count * KEYSTREAM_STRIDE));
  }
}

/** HMAC-SHA256(H, encrypted || be64(packet#)). */
class PacketMac {
  /** A raw key: createHmac imports it faster than a KeyObject, per packet. */
  readonly #key: Buffer;
  readonly #number = Buffer.alloc(PACKET_NUMBER_BYTES);

  constructor(macKey: Uint8Array) {
    if (macKey.length !== KEY_BYTES) throw new InvalidArgumentError(`spiped MAC key must be ${KEY_BYTES} bytes`);
    this.#key = Buffer.from(macKey);
  }

  compute(encrypted: Buffer, packet: number): Buffer {
    this.#number.writeUInt32BE(Math.floor(packet / UINT32_RANGE), 0);
    this.#number.writeUInt32BE(packet >>> 0, 4);
    // update() copies its input, so the packet-number buffer can be reused.
    return createHmac('sha256', this.#key).update(encrypted).update(this.#number).digest();
  }
}

function checkNumber(next: number, count: number): void {
  if (next + count > MAX_PACKET_NUMBER) throw new NonceExhaustedError('spiped packet counter exhausted: reconnect');
}

/** Turns plaintext into spiped packets for one direction. */
export class PacketSealer {
  readonly #keystream: PacketKeystream;
  readonly #mac: PacketMac;
  #next = 0;

  constructor(keys: DirectionKeys) {
    this.#keystream = new PacketKeystream(keys.cipherKey);
    this.#mac = new PacketMac(keys.macKey);
  }

  /** Packets sealed so far (the next packet number). */
  get packets(): number {
    return this.#next;
  }

  /**
   * Seal `plain` as ceil(len / 1024) packets in one buffer; empty input gives
   * an empty buffer (spiped has no empty packet).
   * @throws NonceExhaustedError after 2^53 - 1 packets.
   */
  seal(plain: Uint8Array): Buffer {
    if (plain.length === 0) return EMPTY;
    const count = Math.ceil(plain.length / MAX_PAYLOAD_BYTES);
    checkNumber(this.#next, count);
    const keystream = this.#keystream.generate(this.#next, count);
    const ksWords = wordsOf(keystream);
    const out = Buffer.allocUnsafe(count * PACKET_BYTES);
    const outWords = wordsOf(out);
    for (let i = 0; i < count; i++) {
      const at = i * PACKET_BYTES;
      const start = i * MAX_PAYLOAD_BYTES;
      const length = Math.min(MAX_PAYLOAD_BYTES, plain.length - start);
      out.set(plain.subarray(start, start + length), at);
      out.fill(0, at + length, at + MAX_PAYLOAD_BYTES);
      out.writeUInt32BE(length, at + MAX_PAYLOAD_BYTES);
      xorCiphertext(out, outWords, at, keystream, ksWords, i * KEYSTREAM_STRIDE);
      const tag = this.#mac.compute(out.subarray(at, at + CIPHERTEXT_BYTES), this.#next);
      tag.copy(out, at + CIPHERTEXT_BYTES);
      this.#next++;
    }
    return out;
  }
}

/**
 * Parses spiped packets from a byte stream for one direction: incremental
 * (any split of the stream works), and no byte of a packet is released before
 * its HMAC verified.
 */
export class PacketOpener {
  readonly #keystream: PacketKeystream;
  readonly #mac: PacketMac;
  /** The start of a packet split across reads. */
  readonly #stage = Buffer.alloc(PACKET_BYTES);
  /** Word-aligned room to decrypt one verified packet in. */
  readonly #scratch = Buffer.alloc(CIPHERTEXT_BYTES);
  readonly #scratchWords = wordsOf(this.#scratch);
  #staged = 0;
  #next = 0;
  #failed = false;

  constructor(keys: DirectionKeys) {
    this.#keystream = new PacketKeystream(keys.cipherKey);
    this.#mac = new PacketMac(keys.macKey);
  }

  /** Packets opened so far. */
  get packets(): number {
    return this.#next;
  }

  /** Bytes of an incomplete packet held: a FIN now would cut a packet (truncation). */
  get pendingBytes(): number {
    return this.#staged;
  }

  /**
   * Feed received bytes; returns the plaintext of every packet they complete
   * (possibly empty). After a throw the opener refuses further input.
   * @throws TamperedError (JUMPER_ERR_TAMPERED) when a packet's HMAC fails:
   *         altered, dropped, replayed or reordered, or sealed with other keys;
   *         BadRecordError when an authentic packet carries a length of 0 or
   *         over 1024 (spiped drops such a connection too);
   *         NonceExhaustedError after 2^53 - 1 packets.
   */
  push(chunk: Buffer): Buffer {
    if (this.#failed) throw new BadRecordError('spiped packet stream already failed');
    let offset = 0;
    if (this.#staged > 0) {
      offset = Math.min(PACKET_BYTES - this.#staged, chunk.length);
      chunk.copy(this.#stage, this.#staged, 0, offset);
      this.#staged += offset;
      if (this.#staged < PACKET_BYTES) return EMPTY;
    }
    const stagedWhole = this.#staged === PACKET_BYTES ? 1 : 0;
    const whole = Math.floor((chunk.length - offset) / PACKET_BYTES);
    const count = stagedWhole + whole;
    let out: Buffer = EMPTY;
    if (count > 0) {
      try {
        out = this.#open(chunk, offset, stagedWhole === 1, count);
      } catch (err) {
        this.#failed = true;
        throw err;
      }
    }
    this.#staged = 0;
    const rest = offset + whole * PACKET_BYTES;
    if (rest < chunk.length) {
      chunk.copy(this.#stage, 0, rest);
      this.#staged = chunk.length - rest;
    }
    return out;
  }

  #open(chunk: Buffer, offset: number, fromStage: boolean, count: number): Buffer {
    checkNumber(this.#next, count);
    const keystream = this.#keystream.generate(this.#next, count);
    const ksWords = wordsOf(keystream);
    const out = Buffer.allocUnsafe(count * MAX_PAYLOAD_BYTES);
    let written = 0;
    for (let i = 0; i < count; i++) {
      const staged = fromStage && i === 0;
      const src = staged ? this.#stage : chunk;
      const at = staged ? 0 : offset + (fromStage ? i - 1 : i) * PACKET_BYTES;
      const expected = this.#mac.compute(src.subarray(at, at + CIPHERTEXT_BYTES), this.#next);
      if (!timingSafeEqual(expected, src.subarray(at + CIPHERTEXT_BYTES, at + PACKET_BYTES))) {
        throw new TamperedError(`spiped packet ${this.#next} failed authentication (tampered, reordered or wrong keys)`);
      }
      const scratch = this.#scratch;
      src.copy(scratch, 0, at, at + CIPHERTEXT_BYTES);
      xorCiphertext(scratch, this.#scratchWords, 0, keystream, ksWords, i * KEYSTREAM_STRIDE);
      const length = scratch.readUInt32BE(MAX_PAYLOAD_BYTES);
      if (length === 0 || length > MAX_PAYLOAD_BYTES) {
        throw new BadRecordError(`spiped packet ${this.#next} carries an invalid length ${length}`);
      }
      scratch.copy(out, written, 0, length);
      written += length;
      this.#next++;
    }
    return out.subarray(0, written);
  }
}
