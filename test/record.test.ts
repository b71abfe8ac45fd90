/**
 * The record layer on every AEAD backend (native one-call seal/open and
 * node:crypto): identical wire bytes, any chunking, tamper detection with
 * nothing unauthenticated delivered, and large counters.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { allRecordAeads, recordAead } from '../src/crypto/record-aead.js';
import { nativeAvailable } from '../src/native/binding.js';
import { RecordOpener, RecordSealer, type RecordSink } from '../src/proto/record.js';

interface Seen {
  data: Buffer[];
  ended: boolean;
  abort?: string;
  origin?: Buffer;
}

function sink(seen: Seen): RecordSink {
  return {
    onData: (body) => void seen.data.push(Buffer.from(body)),
    onEnd: () => void (seen.ended = true),
    onAbort: (reason) => void (seen.abort = reason),
    onOrigin: (body) => void (seen.origin = Buffer.from(body)),
  };
}

const key = randomBytes(32);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('native record AEAD is the default wherever the addon is built', (t) => {
  t.is(recordAead().name, nativeAvailable() ? 'native' : 'node');
});

test('every backend seals the same wire bytes (ORIGIN, DATA of several sizes, END)', (t) => {
  const body = randomBytes(200_000);
  const wires = allRecordAeads().map((aead) => {
    const sealer = new RecordSealer(key, aead);
    const out: Buffer[] = [];
    sealer.sealOrigin(Buffer.from('origin'), out);
    sealer.sealData(Buffer.alloc(0), out);
    sealer.sealData(body, out);
    sealer.sealEnd(out);
    return Buffer.concat(out);
  });
  for (const wire of wires.slice(1)) t.true(wire.equals(wires[0]!));
});

for (const aead of allRecordAeads()) {
  test(`${aead.name}: records opened by every backend, fed one byte at a time`, (t) => {
    const body = randomBytes(70_000);
    const sealer = new RecordSealer(key, aead);
    const out: Buffer[] = [];
    sealer.sealOrigin(Buffer.from('who'), out);
    sealer.sealData(body, out);
    sealer.sealAbort('provider refused!', out);
    const wire = Buffer.concat(out);
    for (const other of allRecordAeads()) {
      const seen: Seen = { data: [], ended: false };
      const opener = new RecordOpener(key, other);
      for (let i = 0; i < wire.length; i += 997) opener.push(wire.subarray(i, Math.min(wire.length, i + 997)), sink(seen));
      t.is(sha(Buffer.concat(seen.data)), sha(body), other.name);
      t.deepEqual(seen.origin, Buffer.from('who'));
      t.is(seen.abort, 'provider_refused_');
    }
  });

  test(`${aead.name}: a flipped bit fails with JUMPER_ERR_TAMPERED and delivers nothing of that record`, (t) => {
    const sealer = new RecordSealer(key, aead);
    const out: Buffer[] = [];
    sealer.sealData(Buffer.from('first'), out);
    sealer.sealData(Buffer.from('second'), out);
    const wire = Buffer.concat(out);
    wire[wire.length - 20]! ^= 0x01; // inside the second record's ciphertext
    const seen: Seen = { data: [], ended: false };
    const err = t.throws(() => new RecordOpener(key, aead).push(wire, sink(seen)));
    t.is((err as { code?: string }).code, 'JUMPER_ERR_TAMPERED');
    t.deepEqual(seen.data, [Buffer.from('first')]);
  });

  test(`${aead.name}: a wrong key opens nothing`, (t) => {
    const out: Buffer[] = [];
    new RecordSealer(key, aead).sealData(Buffer.from('secret'), out);
    const seen: Seen = { data: [], ended: false };
    const err = t.throws(() => new RecordOpener(randomBytes(32), aead).push(Buffer.concat(out), sink(seen)));
    t.is((err as { code?: string }).code, 'JUMPER_ERR_TAMPERED');
    t.is(seen.data.length, 0);
  });
}

test('counters past 2^32 give the same nonce on every backend', (t) => {
  const counter = 2 ** 32 + 5;
  const sealed = allRecordAeads().map((aead) => {
    const out: Buffer[] = [];
    aead.seal(aead.importKey(key), counter, 0, Buffer.from('x'), out);
    return Buffer.concat(out);
  });
  for (const s of sealed.slice(1)) t.true(s.equals(sealed[0]!));
  for (const aead of allRecordAeads()) {
    const opened = aead.open(aead.importKey(key), counter, sealed[0]!.subarray(2));
    t.deepEqual(opened, Buffer.from([0, 0x78]), aead.name);
    t.is(aead.open(aead.importKey(key), counter - 2 ** 32, sealed[0]!.subarray(2)), null, aead.name);
  }
});
