/**
 * spiped packet layer and handshake, without sockets.
 */
import test from 'ava';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { SpipedHandshake, DH_MESSAGE_BYTES, type PfsMode } from '../src/proto/spiped/handshake.js';
import { MAX_PAYLOAD_BYTES, PACKET_BYTES, PacketOpener, PacketSealer } from '../src/proto/spiped/packet.js';

const keys = () => ({ cipherKey: randomBytes(32), macKey: randomBytes(32) });

test('round trip of every size class, in one push', (t) => {
  const k = keys();
  const sealer = new PacketSealer(k);
  const opener = new PacketOpener(k);
  for (const size of [1, 2, 1023, 1024, 1025, 2048, 65536, 100_003]) {
    const plain = randomBytes(size);
    const wire = sealer.seal(plain);
    t.is(wire.length, Math.ceil(size / MAX_PAYLOAD_BYTES) * PACKET_BYTES);
    t.deepEqual(opener.push(wire), plain);
    t.is(opener.pendingBytes, 0);
  }
  t.is(sealer.seal(Buffer.alloc(0)).length, 0, 'no empty packets: spiped rejects length 0');
  t.is(sealer.packets, opener.packets);
});

test('one byte at a time: nothing is released before the packet is whole', (t) => {
  const k = keys();
  const plain = randomBytes(3000);
  const wire = new PacketSealer(k).seal(plain);
  const opener = new PacketOpener(k);
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) {
    const got = opener.push(wire.subarray(i, i + 1));
    if ((i + 1) % PACKET_BYTES !== 0) t.is(got.length, 0);
    out.push(got);
  }
  t.deepEqual(Buffer.concat(out), plain);
});

test('arbitrary splits across packet boundaries', (t) => {
  const k = keys();
  const plain = randomBytes(50_000);
  const wire = new PacketSealer(k).seal(plain);
  const opener = new PacketOpener(k);
  const out: Buffer[] = [];
  for (let at = 0; at < wire.length; ) {
    const n = 1 + Math.floor(Math.random() * 3000);
    out.push(opener.push(wire.subarray(at, at + n)));
    at += n;
  }
  t.deepEqual(Buffer.concat(out), plain);
});

test('a flipped bit anywhere fails with JUMPER_ERR_TAMPERED and releases nothing', (t) => {
  const k = keys();
  for (const at of [0, 500, 1023, 1024, 1027, 1028, 1059]) {
    const wire = new PacketSealer(k).seal(randomBytes(1024));
    wire[at]! ^= 0x01;
    const opener = new PacketOpener(k);
    t.throws(() => opener.push(wire), { code: 'JUMPER_ERR_TAMPERED' }, `bit at ${at}`);
    t.throws(() => opener.push(Buffer.alloc(1)), { code: 'JUMPER_ERR_BAD_RECORD' }, 'dead after a failure');
  }
});

test('a replayed, dropped or reordered packet fails (the packet number is under the HMAC)', (t) => {
  const k = keys();
  const sealer = new PacketSealer(k);
  const p0 = sealer.seal(randomBytes(10));
  const p1 = sealer.seal(randomBytes(10));
  t.throws(() => new PacketOpener(k).push(p1), { code: 'JUMPER_ERR_TAMPERED' });
  const opener = new PacketOpener(k);
  opener.push(p0);
  t.throws(() => opener.push(p0), { code: 'JUMPER_ERR_TAMPERED' });
  t.throws(() => new PacketOpener(keys()).push(p0), { code: 'JUMPER_ERR_TAMPERED' }, 'other keys');
});

test('layout matches DESIGN.md, checked with an independent AES-256-CTR and HMAC', (t) => {
  const k = keys();
  const sealer = new PacketSealer(k);
  sealer.seal(randomBytes(5)); // packet #0
  const message = Buffer.from('hello spiped');
  const packet = sealer.seal(message); // packet #1
  const number = Buffer.alloc(8);
  number.writeUInt32BE(1, 4);
  const encrypted = packet.subarray(0, 1028);
  const mac = createHmac('sha256', k.macKey).update(encrypted).update(number).digest();
  t.deepEqual(packet.subarray(1028), mac);
  // Counter block i = be64(packet#) || be64(i): node's 128-bit CTR from IV be64(1) || 0.
  const iv = Buffer.concat([number, Buffer.alloc(8)]);
  const padded = createDecipheriv('aes-256-ctr', k.cipherKey, iv).update(encrypted);
  t.deepEqual(padded.subarray(0, message.length), message);
  t.true(padded.subarray(message.length, 1024).equals(Buffer.alloc(1024 - message.length)));
  t.is(padded.readUInt32BE(1024), message.length);
});

test('an authentic packet with length 0 is refused like spiped does', (t) => {
  const k = keys();
  const number = Buffer.alloc(8);
  const encrypted = createDecipheriv('aes-256-ctr', k.cipherKey, Buffer.alloc(16)).update(Buffer.alloc(1028));
  const mac = createHmac('sha256', k.macKey).update(encrypted).update(number).digest();
  t.throws(() => new PacketOpener(k).push(Buffer.concat([encrypted, mac])), { code: 'JUMPER_ERR_BAD_RECORD' });
});

function runHandshake(clientKey: Buffer, serverKey: Buffer, clientPfs: PfsMode, serverPfs: PfsMode) {
  const client = new SpipedHandshake('client', clientKey, clientPfs);
  const server = new SpipedHandshake('server', serverKey, serverPfs);
  client.receiveNonce(server.nonce);
  server.receiveNonce(client.nonce);
  const clientDh = client.dhMessage();
  server.verifyPeerDh(clientDh);
  const serverDh = server.dhMessage();
  client.verifyPeerDh(serverDh);
  return { client: client.finish(), server: server.finish(), clientDh, serverDh };
}

test('handshake: both sides derive crossed keys, with and without PFS', (t) => {
  const K = randomBytes(32);
  for (const [c, s, fs] of [
    ['default', 'default', true],
    ['off', 'default', false],
    ['default', 'off', false],
    ['off', 'off', false],
    ['require', 'require', true],
  ] as const) {
    const r = runHandshake(K, K, c, s);
    t.is(r.clientDh.length, DH_MESSAGE_BYTES);
    t.deepEqual(r.client.send, r.server.recv, `${c}/${s}`);
    t.deepEqual(r.client.recv, r.server.send, `${c}/${s}`);
    t.notDeepEqual(r.client.send.cipherKey, r.client.recv.cipherKey);
    t.is(r.client.forwardSecret, fs);
    t.is(r.server.forwardSecret, fs);
  }
  const off = runHandshake(K, K, 'off', 'off');
  const one = Buffer.alloc(256);
  one[255] = 1;
  t.deepEqual(off.clientDh.subarray(0, 256), one, '-f sends y = 1');
});

test('handshake: a wrong key fails with bad_key at the server', (t) => {
  const error = t.throws(() => runHandshake(randomBytes(32), randomBytes(32), 'default', 'default'));
  t.is((error as { reason?: string }).reason, 'bad_key');
});

test('handshake: require refuses a peer without PFS on both sides', (t) => {
  const K = randomBytes(32);
  const atServer = t.throws(() => runHandshake(K, K, 'off', 'require'));
  t.is((atServer as { reason?: string }).reason, 'pfs_required');
  const atClient = t.throws(() => runHandshake(K, K, 'require', 'off'));
  t.is((atClient as { reason?: string }).reason, 'pfs_required');
});
