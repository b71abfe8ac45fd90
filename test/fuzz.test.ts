/**
 * A short bounded run of the mutation fuzzer (fuzz/fuzz.ts), plus the edge
 * inputs it exercises kept as fixed regression cases. `npm run fuzz --
 * --seconds N` runs it longer.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { runFuzz } from '../fuzz/fuzz.js';
import { JumperError } from '../src/index.js';
import { CLIENT_HELLO_BYTES, respondToClientHello, startClientHandshake } from '../src/proto/handshake.js';
import { RecordOpener, RecordSealer, type RecordSink } from '../src/proto/record.js';
import { makeKey } from './helpers/tunnel.js';

const sink = (): RecordSink & { got: string[] } => {
  const got: string[] = [];
  return {
    got,
    onData: (b) => void got.push(`data:${b.length}`),
    onEnd: () => void got.push('end'),
    onAbort: (r) => void got.push(`abort:${r}`),
    onOrigin: (b) => void got.push(`origin:${b.length}`),
  };
};

test('5 s of mutated records and handshakes: only typed errors, nothing mutated accepted', async (t) => {
  const report = await runFuzz({ seconds: 5, log: (l) => t.log(l) });
  t.deepEqual(report.failures, [], `seed ${report.seed}`);
  t.true(Object.values(report.iterations).every((n) => n > 100), 'every target ran');
});

test('regression: a record length of 65535 with nothing after it waits, holding at most one record', (t) => {
  const opener = new RecordOpener(randomBytes(32));
  const s = sink();
  opener.push(Buffer.of(0xff, 0xff), s);
  opener.push(randomBytes(60_000), s);
  t.deepEqual(s.got, []);
  t.true(opener.pendingBytes <= 2 + 65535);
});

test('regression: lengths 0..16 are bad_record at once, split or whole', (t) => {
  for (const length of [0, 1, 16]) {
    const whole = new RecordOpener(randomBytes(32));
    t.throws(() => whole.push(Buffer.of(0, length, 1, 2, 3), sink()), { code: 'JUMPER_ERR_BAD_RECORD' } as never);
    const split = new RecordOpener(randomBytes(32));
    split.push(Buffer.of(0), sink());
    t.throws(() => split.push(Buffer.of(length), sink()), { code: 'JUMPER_ERR_BAD_RECORD' } as never);
  }
});

test('regression: bytes after END are bad_record; the END itself was delivered once', (t) => {
  const key = randomBytes(32);
  const out: Buffer[] = [];
  const sealer = new RecordSealer(key);
  sealer.sealData(Buffer.from('x'), out);
  sealer.sealEnd(out);
  sealer.sealEnd(out);
  const s = sink();
  t.throws(() => new RecordOpener(key).push(Buffer.concat(out), s), { code: 'JUMPER_ERR_BAD_RECORD' } as never);
  t.deepEqual(s.got, ['data:1', 'end']);
});

test('regression: a record sealed under the other direction key is tampered', (t) => {
  const out: Buffer[] = [];
  new RecordSealer(randomBytes(32)).sealData(Buffer.from('hello'), out);
  const err = t.throws(() => new RecordOpener(randomBytes(32)).push(Buffer.concat(out), sink()));
  t.true(err instanceof JumperError);
  t.is((err as JumperError).code, 'JUMPER_ERR_TAMPERED');
});

test('regression: client hellos one byte short or long are refused with typed errors', async (t) => {
  const key = await makeKey();
  const hello = startClientHandshake(key).hello;
  t.is(hello.length, CLIENT_HELLO_BYTES);
  for (const bad of [hello.subarray(0, CLIENT_HELLO_BYTES - 1), Buffer.concat([hello, Buffer.of(0)]), Buffer.alloc(0)]) {
    const err = t.throws(() => respondToClientHello([key], bad));
    t.true(err instanceof JumperError, `length ${bad.length}: ${String(err)}`);
  }
});
