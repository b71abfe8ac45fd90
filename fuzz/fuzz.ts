/**
 * Seeded mutation fuzzer for the parsers that face the network: the record
 * opener (src/proto/record.ts) and both sides of the handshake
 * (src/proto/handshake.ts).
 *
 * (Jazzer.js was tried first: its prebuilt libFuzzer addon needs glibc 2.38,
 * newer than this Debian's, so this is a plain mutation fuzzer instead.)
 *
 * Each input is a valid message made with the real sealer/handshake, then
 * mutated: bit flips, byte edits, truncation, length-field edits, splicing
 * two streams, duplicating, deleting or inserting byte ranges; record
 * streams are also fed in random chunkings. Invariants:
 *  - nothing is thrown but a JumperError with an expected code;
 *  - nothing mutated is accepted: the records an opener delivers are always
 *    a prefix of the records that were sealed, and a handshake message that
 *    differs from the genuine one never completes;
 *  - no single input takes longer than SLOW_INPUT_MS (a hang shows up as a
 *    bounded run that never returns, which the test's timeout catches).
 *
 * Usage: npm run fuzz -- --seconds 60 [--seed 1234]
 * A failure prints the seed and iteration; rerun with that seed to replay.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { deriveKey, JumperError, type TunnelKey } from '../src/index.js';
import { respondToClientHello, startClientHandshake } from '../src/proto/handshake.js';
import { LENGTH_BYTES, RecordOpener, RecordSealer, type RecordSink } from '../src/proto/record.js';

/** Codes a hostile record stream may produce. */
const RECORD_CODES = new Set(['JUMPER_ERR_TAMPERED', 'JUMPER_ERR_BAD_RECORD', 'JUMPER_ERR_PEER_ABORT']);
/** Codes a hostile handshake message may produce. */
const HANDSHAKE_CODES = new Set(['JUMPER_ERR_BAD_MAGIC', 'JUMPER_ERR_BAD_VERSION', 'JUMPER_ERR_AUTH', 'JUMPER_ERR_INVALID_ARG']);
const SLOW_INPUT_MS = 2_000;
const MAX_BODY = 70_000;

/** xorshift128+: fast, seedable, good enough to pick mutations. */
export class Rng {
  #s0: bigint;
  #s1: bigint;
  constructor(seed: number) {
    this.#s0 = BigInt(seed >>> 0) * 0x9e3779b97f4a7c15n + 1n;
    this.#s1 = (BigInt(seed >>> 0) ^ 0xdeadbeefn) * 0xbf58476d1ce4e5b9n + 7n;
    for (let i = 0; i < 8; i++) this.next();
  }
  next(): number {
    const mask = (1n << 64n) - 1n;
    let s1 = this.#s0;
    const s0 = this.#s1;
    this.#s0 = s0;
    s1 ^= (s1 << 23n) & mask;
    this.#s1 = s1 ^ s0 ^ (s1 >> 17n) ^ (s0 >> 26n);
    return Number(((this.#s1 + s0) & mask) >> 11n) / 2 ** 53;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

type Mutation = (input: Buffer, rng: Rng, other: Buffer) => Buffer;

const mutations: Record<string, Mutation> = {
  flipBit: (b, r) => {
    const out = Buffer.from(b);
    if (out.length > 0) out[r.int(out.length)]! ^= 1 << r.int(8);
    return out;
  },
  setByte: (b, r) => {
    const out = Buffer.from(b);
    if (out.length > 0) out[r.int(out.length)] = [0, 0xff, 0x7f, 0x80, r.int(256)][r.int(5)]!;
    return out;
  },
  truncate: (b, r) => b.subarray(0, r.int(b.length)),
  // Length fields sit at record starts; rewrite one at a plausible offset or the very first.
  editLength: (b, r) => {
    const out = Buffer.from(b);
    if (out.length < LENGTH_BYTES) return out;
    const at = r.next() < 0.5 ? 0 : r.int(out.length - 1);
    out.writeUInt16BE([0, 1, 16, 17, 18, 0xffff, 0x8000, r.int(0x10000)][r.int(8)]!, at);
    return out;
  },
  splice: (b, r, other) => Buffer.concat([b.subarray(0, r.int(b.length + 1)), other.subarray(r.int(other.length + 1))]),
  duplicateRange: (b, r) => {
    const start = r.int(b.length + 1);
    const end = start + r.int(b.length - start + 1);
    return Buffer.concat([b.subarray(0, end), b.subarray(start, end), b.subarray(end)]);
  },
  deleteRange: (b, r) => {
    const start = r.int(b.length + 1);
    const end = start + 1 + r.int(Math.max(1, Math.min(64, b.length - start)));
    return Buffer.concat([b.subarray(0, start), b.subarray(end)]);
  },
  insertRandom: (b, r) => {
    const at = r.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(32)), b.subarray(at)]);
  },
};
const mutationNames = Object.keys(mutations);

/** Apply 1..3 random mutations; returns the name chain for reports. */
function mutate(input: Buffer, rng: Rng, other: Buffer): { data: Buffer; how: string[] } {
  let data = input;
  const how: string[] = [];
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const name = mutationNames[rng.int(mutationNames.length)]!;
    how.push(name);
    data = mutations[name]!(data, rng, other);
  }
  return { data, how };
}

export interface Failure {
  target: string;
  seed: number;
  iteration: number;
  mutations: string[];
  problem: string;
  input: string;
}

interface SealedStream {
  wire: Buffer;
  /** What was sealed, in order: type letter and body. */
  records: { type: 'data' | 'end' | 'abort' | 'origin'; body: Buffer }[];
  key: Buffer;
}

function sealStream(rng: Rng, key: Buffer): SealedStream {
  const sealer = new RecordSealer(key);
  const out: Buffer[] = [];
  const count = 1 + rng.int(5);
  if (rng.next() < 0.3) {
    const body = rng.bytes(rng.int(40));
    sealer.sealOrigin(body, out);
  }
  const sealedData: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const body = rng.bytes(rng.next() < 0.1 ? rng.int(MAX_BODY) : rng.int(300));
    sealer.sealData(body, out);
    sealedData.push(body);
  }
  const tail = rng.int(3);
  if (tail === 0) {
    sealer.sealEnd(out);
  } else if (tail === 1) {
    sealer.sealAbort('provider_refused', out);
  }
  const wire = Buffer.concat(out);
  // The reference list is the genuine stream opened in one piece (sealData may split
  // large bodies); its data must be exactly what was sealed.
  const opened = openStream(wire, key, null);
  if (opened.error !== undefined) throw new Error(`a genuine stream failed to open: ${String(opened.error)}`);
  const data = Buffer.concat(opened.delivered.filter((r) => r.type === 'data').map((r) => r.body));
  if (!data.equals(Buffer.concat(sealedData))) throw new Error('a genuine stream opened to different data');
  return { wire, records: opened.delivered, key };
}

/** Feed `wire` in random chunks; returns what the opener delivered, or the error it threw. */
function openStream(wire: Buffer, key: Buffer, rng: Rng | null): { delivered: SealedStream['records']; error?: unknown } {
  const opener = new RecordOpener(key);
  const delivered: SealedStream['records'] = [];
  const sink: RecordSink = {
    onData: (body) => void delivered.push({ type: 'data', body: Buffer.from(body) }),
    onEnd: () => void delivered.push({ type: 'end', body: Buffer.alloc(0) }),
    onAbort: (reason) => void delivered.push({ type: 'abort', body: Buffer.from(reason) }),
    onOrigin: (body) => void delivered.push({ type: 'origin', body: Buffer.from(body) }),
  };
  let offset = 0;
  try {
    while (offset < wire.length) {
      const size = !rng ? wire.length : rng.next() < 0.2 ? 1 + rng.int(4) : 1 + rng.int(wire.length - offset);
      // Fresh copies: the opener may keep views of what it is given.
      opener.push(Buffer.from(wire.subarray(offset, offset + size)), sink);
      offset += size;
    }
  } catch (error) {
    return { delivered, error };
  }
  return { delivered };
}

function isPrefix(got: SealedStream['records'], sealed: SealedStream['records']): boolean {
  if (got.length > sealed.length) return false;
  return got.every((r, i) => r.type === sealed[i]!.type && r.body.equals(sealed[i]!.body));
}

function checkError(error: unknown, codes: Set<string>): string | undefined {
  if (!(error instanceof JumperError)) return `threw a non-JumperError: ${String((error as Error)?.stack ?? error)}`;
  if (!codes.has(error.code)) return `unexpected code ${error.code}: ${error.message}`;
  return undefined;
}

export interface FuzzOptions {
  seconds: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  iterations: Record<string, number>;
  failures: Failure[];
  slowestMs: number;
}

/** Run all targets round-robin for `seconds`; never throws, reports failures. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? randomBytes(4).readUInt32BE(0);
  const rng = new Rng(seed);
  const keys: TunnelKey[] = [await deriveKey(randomBytes(32)), await deriveKey(randomBytes(32))];
  // Splice partner: a genuine hello under a key the server does NOT accept. (Splicing with a
  // hello under an accepted key can reproduce that hello exactly: a valid message, not a finding.)
  const strangerKey = await deriveKey(randomBytes(32));
  const report: FuzzReport = { seed, iterations: { records: 0, serverHandshake: 0, clientHandshake: 0 }, failures: [], slowestMs: 0 };
  const fail = (f: Omit<Failure, 'seed'>) => {
    if (report.failures.length < 20) report.failures.push({ ...f, seed });
  };
  const deadline = Date.now() + options.seconds * 1000;
  let iteration = 0;
  let previousWire: Buffer = Buffer.alloc(0);
  while (Date.now() < deadline) {
    iteration++;
    const started = performance.now();
    const target = iteration % 3;
    if (target === 0) {
      // Record stream.
      report.iterations.records!++;
      const key = rng.bytes(32);
      const sealed = sealStream(rng, key);
      const { data, how } = rng.next() < 0.05 ? { data: sealed.wire, how: ['none'] } : mutate(sealed.wire, rng, previousWire);
      previousWire = sealed.wire;
      const result = openStream(data, key, rng);
      const problem = result.error !== undefined ? checkError(result.error, RECORD_CODES) : undefined;
      if (problem) fail({ target: 'records', iteration, mutations: how, problem, input: data.toString('hex').slice(0, 4000) });
      else if (!isPrefix(result.delivered, sealed.records)) {
        fail({ target: 'records', iteration, mutations: how, problem: 'delivered a record that was never sealed (mutation accepted)', input: data.toString('hex').slice(0, 4000) });
      } else if (data.equals(sealed.wire) && (result.error !== undefined || result.delivered.length !== sealed.records.length)) {
        fail({ target: 'records', iteration, mutations: how, problem: `an unmodified stream was not opened whole: ${String(result.error)}`, input: '' });
      }
    } else if (target === 1) {
      // Server side: a client hello.
      report.iterations.serverHandshake!++;
      const key = keys[0]!;
      const hello = startClientHandshake(key).hello;
      const { data, how } = mutate(hello, rng, startClientHandshake(strangerKey).hello);
      try {
        respondToClientHello(keys, data);
        // Only the genuine hello may pass; a mutation that changed nothing is not a finding.
        if (!data.equals(hello)) fail({ target: 'serverHandshake', iteration, mutations: how, problem: 'a mutated client hello was accepted', input: data.toString('hex') });
      } catch (error) {
        const problem = checkError(error, HANDSHAKE_CODES);
        if (problem) fail({ target: 'serverHandshake', iteration, mutations: how, problem, input: data.toString('hex') });
        else if (data.equals(hello)) fail({ target: 'serverHandshake', iteration, mutations: how, problem: 'the genuine hello was refused', input: '' });
      }
    } else {
      // Client side: a server hello.
      report.iterations.clientHandshake!++;
      const client = startClientHandshake(keys[0]!);
      const reply = respondToClientHello(keys, client.hello).reply;
      const { data, how } = mutate(reply, rng, respondToClientHello(keys, startClientHandshake(keys[0]!).hello).reply);
      try {
        client.finish(data);
        if (!data.equals(reply)) fail({ target: 'clientHandshake', iteration, mutations: how, problem: 'a mutated server hello was accepted', input: data.toString('hex') });
      } catch (error) {
        const problem = checkError(error, HANDSHAKE_CODES);
        if (problem) fail({ target: 'clientHandshake', iteration, mutations: how, problem, input: data.toString('hex') });
      }
    }
    const elapsed = performance.now() - started;
    if (elapsed > report.slowestMs) report.slowestMs = elapsed;
    if (elapsed > SLOW_INPUT_MS) fail({ target: ['records', 'serverHandshake', 'clientHandshake'][target]!, iteration, mutations: [], problem: `one input took ${elapsed.toFixed(0)} ms`, input: '' });
    // Let timers (the caller's timeout) run now and then.
    if (iteration % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  options.log?.(`fuzz seed ${seed}: ${JSON.stringify(report.iterations)}, slowest input ${report.slowestMs.toFixed(1)} ms, ${report.failures.length} failures`);
  return report;
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const seconds = Number(argValue('--seconds') ?? '30');
  const seedArg = argValue('--seed');
  const report = await runFuzz({ seconds, ...(seedArg ? { seed: Number(seedArg) } : {}), log: (l) => console.log(l) });
  for (const f of report.failures) console.log(JSON.stringify(f));
  process.exit(report.failures.length === 0 ? 0 : 1);
}
