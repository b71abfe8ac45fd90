/**
 * The tiny wire protocol spoken between the measuring client and the
 * provider, plus the deterministic payload used to check every byte.
 *
 * All systems front ONE provider port; the first byte of a connection picks
 * the provider mode, so each system needs a single proxy chain:
 *
 *   'E'                       echo: everything (including the 'E') is echoed.
 *   'U' len:u64be data[len]   upload sink: the provider checks the bytes against
 *                             the pattern and answers count:u64be ok:u8.
 *   'D' len:u64be             download source: the provider sends len pattern
 *                             bytes, then closes its side.
 *
 * No half-close is needed anywhere (socat and friends treat half-close
 * differently), so the protocol measures the proxies, not their EOF policy.
 *
 * Payload: a pseudo-random pattern whose length is deliberately odd so that it
 * never lines up with a record or buffer size; stream byte i is
 * pattern[i % PATTERN_LEN]. Checking is a memcmp against the pattern, which is
 * much cheaper than hashing (the check runs on the same two cores as the
 * proxies) yet detects any corrupted, dropped, duplicated or reordered byte
 * (together with the byte count).
 */

export const MODE_ECHO = 0x45; // 'E'
export const MODE_UPLOAD = 0x55; // 'U'
export const MODE_DOWNLOAD = 0x44; // 'D'

export const LENGTH_BYTES = 8;
export const UPLOAD_REPLY_BYTES = LENGTH_BYTES + 1;

/** 1 MiB + 13: odd, so stream offsets drift against any power-of-two framing. */
export const PATTERN_LEN = 1024 * 1024 + 13;
/** Largest write the sources issue (a slice of the doubled pattern). */
export const WRITE_CHUNK = 64 * 1024;

function makePattern(): Buffer {
  // xorshift32 with a fixed seed: identical in every process, no I/O needed.
  const words = Math.ceil(PATTERN_LEN / 4);
  const out = Buffer.allocUnsafe(words * 4);
  let x = 0x9e3779b9;
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i * 4);
  }
  return out.subarray(0, PATTERN_LEN);
}

const PATTERN = makePattern();
/** Pattern twice in a row: any window of up to PATTERN_LEN bytes is contiguous. */
const PATTERN2 = Buffer.concat([PATTERN, PATTERN]);

/** Bytes [offset, offset+len) of the infinite pattern stream, len <= PATTERN_LEN. */
export function patternSlice(offset: number, len: number): Buffer {
  const start = offset % PATTERN_LEN;
  return PATTERN2.subarray(start, start + len);
}

/** Incremental checker: feed the received chunks in order. */
export class PatternChecker {
  private offset = 0;
  private bad = false;

  get bytes(): number {
    return this.offset;
  }

  get ok(): boolean {
    return !this.bad;
  }

  update(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const n = Math.min(chunk.length - pos, PATTERN_LEN);
      if (!this.bad) {
        const expected = patternSlice(this.offset, n);
        if (chunk.compare(expected, 0, n, pos, pos + n) !== 0) this.bad = true;
      }
      this.offset += n;
      pos += n;
    }
  }
}

export function encodeRequest(mode: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(1 + LENGTH_BYTES);
  b[0] = mode;
  b.writeBigUInt64BE(BigInt(length), 1);
  return b;
}

export function encodeUploadReply(count: number, ok: boolean): Buffer {
  const b = Buffer.allocUnsafe(UPLOAD_REPLY_BYTES);
  b.writeBigUInt64BE(BigInt(count), 0);
  b[LENGTH_BYTES] = ok ? 1 : 0;
  return b;
}

export function decodeUploadReply(b: Buffer): { count: number; ok: boolean } {
  return { count: Number(b.readBigUInt64BE(0)), ok: b[LENGTH_BYTES] === 1 };
}
