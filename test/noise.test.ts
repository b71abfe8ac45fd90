/**
 * Noise NNpsk0 against the public cacophony vectors, and the OpenSSL record
 * AEAD against the same vectors' transport messages.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSodium } from '../src/crypto/sodium.js';
import { allHandshakePrimitives, handshakePrimitives, type HandshakePrimitives } from '../src/crypto/handshake-primitives.js';
import { loadNative, nativeAvailable, nativeExports } from '../src/native/binding.js';
import { keyPairFromPrivate, NNpsk0Handshake, PROTOCOL_NAME } from '../src/proto/noise.js';
import { sealTransport } from '../src/proto/record.js';

interface Vector {
  protocol_name: string;
  init_prologue: string;
  resp_prologue: string;
  init_psks: string[];
  resp_psks: string[];
  init_ephemeral: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

/** The workspace's vector file when the checkout sits next to it, else the copy in test/vectors. */
const vectorsPaths = [
  fileURLToPath(new URL('../../shared/testdata/noise/cacophony-NNpsk0.json', import.meta.url)),
  fileURLToPath(new URL('./vectors/cacophony-NNpsk0-ChaChaPoly-BLAKE2b.json', import.meta.url)),
];
const hex = (s: string) => Buffer.from(s, 'hex');

function loadVector(): Vector | undefined {
  for (const path of vectorsPaths) {
    try {
      const all = JSON.parse(readFileSync(path, 'utf8')) as { vectors: Vector[] };
      const found = all.vectors.find((v) => v.protocol_name === PROTOCOL_NAME);
      if (found) return found;
    } catch {
      // not there: try the next
    }
  }
  return undefined;
}

test.before(async () => {
  await loadSodium();
});

const vector = loadVector();
const withVector = vector ? test : test.skip;
if (!vector) console.log(`skipping vector tests: none of ${vectorsPaths.join(', ')} holds ${PROTOCOL_NAME}`);

function checkVector(t: ExecutionContext, primitives: HandshakePrimitives): void {
  const v = vector!;
  const initiator = new NNpsk0Handshake({
    role: 'initiator',
    psk: hex(v.init_psks[0]!),
    prologue: hex(v.init_prologue),
    ephemeral: keyPairFromPrivate(hex(v.init_ephemeral), primitives),
    primitives,
  });
  const responder = new NNpsk0Handshake({
    role: 'responder',
    psk: hex(v.resp_psks[0]!),
    prologue: hex(v.resp_prologue),
    ephemeral: keyPairFromPrivate(hex(v.resp_ephemeral), primitives),
    primitives,
  });
  const [m0, m1] = v.messages as [Vector['messages'][0], Vector['messages'][0]];

  const c0 = initiator.writeMessage(hex(m0.payload));
  t.is(Buffer.from(c0).toString('hex'), m0.ciphertext);
  t.is(Buffer.from(responder.readMessage(c0)).toString('hex'), m0.payload);

  const c1 = responder.writeMessage(hex(m1.payload));
  t.is(Buffer.from(c1).toString('hex'), m1.ciphertext);
  t.is(Buffer.from(initiator.readMessage(c1)).toString('hex'), m1.payload);

  const ik = initiator.split();
  const rk = responder.split();
  t.is(Buffer.from(ik.handshakeHash).toString('hex'), v.handshake_hash);
  t.is(Buffer.from(rk.handshakeHash).toString('hex'), v.handshake_hash);
  t.deepEqual(Buffer.from(ik.sendKey), Buffer.from(rk.recvKey));
  t.deepEqual(Buffer.from(ik.recvKey), Buffer.from(rk.sendKey));

  // Transport messages alternate initiator, responder; OpenSSL must match libsodium's vectors.
  const counters = { init: 0, resp: 0 };
  v.messages.slice(2).forEach((m, i) => {
    const fromInitiator = i % 2 === 0;
    const key = fromInitiator ? ik.sendKey : rk.sendKey;
    const n = fromInitiator ? counters.init++ : counters.resp++;
    t.is(sealTransport(key, n, hex(m.payload)).toString('hex'), m.ciphertext, `transport message ${i}`);
  });
}

for (const primitives of allHandshakePrimitives()) {
  withVector(`cacophony NNpsk0 ChaChaPoly BLAKE2b: handshake messages and hash match (${primitives.name} primitives)`, (t) => {
    checkVector(t, primitives);
  });
}

test('the native primitives are the default wherever the addon is built, named for their X25519', (t) => {
  const sodium = nativeExports<Record<'sodiumX25519Agree', unknown>>(['sodiumX25519Agree']) !== undefined;
  t.is(handshakePrimitives().name, !nativeAvailable() ? 'node' : sodium ? 'native' : 'native-openssl');
});

test('every pair of backends (native, native-openssl, node) interoperates in one handshake, both directions', (t) => {
  const backends = allHandshakePrimitives();
  if (backends.length < 2) return t.pass('only one backend here');
  const psk = Buffer.alloc(32, 3);
  const prologue = Buffer.from('jumper test');
  const pairs = backends.flatMap((a) => backends.filter((b) => b !== a).map((b) => [a, b] as const));
  t.is(pairs.length, backends.length * (backends.length - 1));
  for (const [a, b] of pairs) {
    const i = new NNpsk0Handshake({ role: 'initiator', psk, prologue, primitives: a });
    const r = new NNpsk0Handshake({ role: 'responder', psk, prologue, primitives: b });
    t.deepEqual(Buffer.from(r.readMessage(i.writeMessage(Buffer.from('hello')))), Buffer.from('hello'));
    t.deepEqual(Buffer.from(i.readMessage(r.writeMessage(Buffer.from('back')))), Buffer.from('back'));
    const ik = i.split();
    const rk = r.split();
    t.deepEqual(Buffer.from(ik.sendKey), Buffer.from(rk.recvKey));
    t.deepEqual(Buffer.from(ik.handshakeHash), Buffer.from(rk.handshakeHash));
  }
});

test('a low-order ephemeral key from the peer is refused with JUMPER_ERR_AUTH by every backend', (t) => {
  for (const primitives of allHandshakePrimitives()) {
    const psk = Buffer.alloc(32, 5);
    const i = new NNpsk0Handshake({ role: 'initiator', psk, prologue: Buffer.alloc(0), primitives });
    const r = new NNpsk0Handshake({ role: 'responder', psk, prologue: Buffer.alloc(0), primitives });
    r.readMessage(i.writeMessage());
    const reply = Buffer.from(r.writeMessage());
    reply.fill(0, 0, 32); // the all-zero point has order 1: X25519 gives all zeros
    const err = t.throws(() => i.readMessage(reply));
    t.is((err as { code?: string }).code, 'JUMPER_ERR_AUTH', primitives.name);
    // Refused at the agreement, before the AEAD could fail on its own.
    t.regex(err!.message, /invalid ephemeral key/, primitives.name);
  }
});

withVector('a wrong psk fails at the responder with JUMPER_ERR_AUTH', (t) => {
  const v = vector!;
  const initiator = new NNpsk0Handshake({ role: 'initiator', psk: hex(v.init_psks[0]!), prologue: hex(v.init_prologue) });
  const wrong = Buffer.alloc(32, 7);
  const responder = new NNpsk0Handshake({ role: 'responder', psk: wrong, prologue: hex(v.resp_prologue) });
  const err = t.throws(() => responder.readMessage(initiator.writeMessage()));
  t.is((err as { code?: string }).code, 'JUMPER_ERR_AUTH');
});

withVector('a different prologue fails authentication', (t) => {
  const v = vector!;
  const psk = hex(v.init_psks[0]!);
  const initiator = new NNpsk0Handshake({ role: 'initiator', psk, prologue: Buffer.from('a') });
  const responder = new NNpsk0Handshake({ role: 'responder', psk, prologue: Buffer.from('b') });
  const err = t.throws(() => responder.readMessage(initiator.writeMessage()));
  t.is((err as { code?: string }).code, 'JUMPER_ERR_AUTH');
});

test('fresh ephemerals: two handshakes with one psk give different transport keys', (t) => {
  const psk = Buffer.alloc(32, 1);
  const run = () => {
    const i = new NNpsk0Handshake({ role: 'initiator', psk, prologue: Buffer.alloc(0) });
    const r = new NNpsk0Handshake({ role: 'responder', psk, prologue: Buffer.alloc(0) });
    r.readMessage(i.writeMessage());
    i.readMessage(r.writeMessage());
    return i.split().sendKey;
  };
  t.notDeepEqual(Buffer.from(run()), Buffer.from(run()));
});

test('messages out of order are refused with JUMPER_ERR_INVALID_ARG', (t) => {
  const i = new NNpsk0Handshake({ role: 'initiator', psk: Buffer.alloc(32), prologue: Buffer.alloc(0) });
  const err = t.throws(() => i.readMessage(Buffer.alloc(48)));
  t.is((err as { code?: string }).code, 'JUMPER_ERR_INVALID_ARG');
  t.throws(() => i.split(), { code: 'JUMPER_ERR_INVALID_ARG' } as never);
});

test('native batch key generation: distinct key pairs whose agreements match', async (t) => {
  const natives = allHandshakePrimitives().filter((p) => p.generateKeyPairs !== undefined);
  if (natives.length === 0) return t.pass('addon not built here');
  const node = allHandshakePrimitives().find((p) => p.name === 'node')!;
  for (const native of natives) {
    const pairs = await native.generateKeyPairs!(16);
    t.is(pairs.length, 16, native.name);
    t.is(new Set(pairs.map((p) => Buffer.from(p.publicKey).toString('hex'))).size, 16, native.name);
    const [a, b] = pairs as [(typeof pairs)[0], (typeof pairs)[0]];
    t.deepEqual(Buffer.from(native.agree(a.privateKey, b.publicKey)), Buffer.from(native.agree(b.privateKey, a.publicKey)));
    // The public key is the private key's: the node backend agrees with it too.
    const c = node.generateKeyPair();
    t.deepEqual(Buffer.from(native.agree(a.privateKey, c.publicKey)), Buffer.from(node.agree(c.privateKey, a.publicKey)), native.name);
  }
});

test('an addon built with libsodium takes its X25519 from it: native is libsodium, native-openssl the other', (t) => {
  if (!nativeAvailable()) return t.pass('addon not built here');
  const addon = loadNative() as unknown as Record<string, unknown>;
  const names = allHandshakePrimitives().map((p) => p.name);
  if (typeof addon['sodiumX25519Agree'] !== 'function') {
    t.deepEqual(names, ['native', 'node']);
    return;
  }
  t.deepEqual(names, ['native', 'native-openssl', 'node']);
  // The default's keys are libsodium's: the OpenSSL agreement refuses them (different type tag).
  const pair = handshakePrimitives().generateKeyPair();
  const openssl = addon as unknown as { x25519Agree(k: unknown, p: Uint8Array): Uint8Array };
  t.throws(() => openssl.x25519Agree(pair.privateKey, pair.publicKey), { instanceOf: TypeError });
});

test('the native agreements refuse anything but a key of their own (TypeError, no crash)', (t) => {
  if (!nativeAvailable()) return t.pass('addon not built here');
  type Agree = (k: unknown, p: Uint8Array) => Uint8Array;
  type Make = () => { privateKey: unknown; publicKey: Uint8Array };
  const addon = loadNative() as unknown as Record<string, Agree | Make | undefined>;
  const impls = [['x25519KeyPair', 'x25519Agree'], ['sodiumX25519KeyPair', 'sodiumX25519Agree']].filter(([make]) => typeof addon[make!] === 'function');
  for (const [make, agree] of impls) {
    const own = (addon[make!] as Make)();
    // Each implementation's keys, handed to the other, are refused too.
    const foreign = impls.filter(([m]) => m !== make).map(([m]) => (addon[m!] as Make)().privateKey);
    for (const bogus of [{}, 7, Buffer.alloc(32), null, ...foreign]) {
      t.throws(() => (addon[agree!] as Agree)(bogus, own.publicKey), { instanceOf: TypeError }, agree);
    }
  }
});
