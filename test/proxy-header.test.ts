/**
 * PROXY protocol headers against the byte layouts of HAProxy's
 * proxy-protocol.txt (v1 §2.1, v2 §2.2).
 */
import test from 'ava';
import {
  decodeAddressBlock,
  encodeAddressBlock,
  encodeProxyV1,
  encodeProxyV2,
  ipEndpoint,
  parseProxyHeader,
  proxyV2FromBlock,
  type ProxyOrigin,
} from '../src/proto/proxy-header.js';

const SIG = '0d0a0d0a000d0a515549540a';
const v4: ProxyOrigin = {
  source: { family: 'ipv4', address: '192.168.0.1', port: 56324 },
  destination: { family: 'ipv4', address: '192.168.0.11', port: 443 },
};
const v6: ProxyOrigin = {
  source: { family: 'ipv6', address: '2001:db8::1', port: 1234 },
  destination: { family: 'ipv6', address: '::1', port: 80 },
};

test('v1 TCP4 is the exact line of the spec example', (t) => {
  t.is(encodeProxyV1(v4).toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
});

test('v1 TCP6 and UNKNOWN', (t) => {
  t.is(encodeProxyV1(v6).toString('latin1'), 'PROXY TCP6 2001:db8::1 ::1 1234 80\r\n');
  t.is(encodeProxyV1(undefined).toString('latin1'), 'PROXY UNKNOWN\r\n');
  const unix: ProxyOrigin = { source: { family: 'unix', path: '' }, destination: { family: 'unix', path: '/run/x.sock' } };
  t.is(encodeProxyV1(unix).toString('latin1'), 'PROXY UNKNOWN\r\n');
});

test('v2 TCP over IPv4: signature, 0x21, 0x11, length 12, addresses then ports', (t) => {
  const h = encodeProxyV2(v4);
  t.is(h.toString('hex'), `${SIG}2111000c` + 'c0a80001' + 'c0a8000b' + 'dc04' + '01bb');
});

test('v2 TCP over IPv6: 0x21 family, length 36', (t) => {
  const h = encodeProxyV2(v6);
  t.is(h.subarray(12, 16).toString('hex'), '21210024');
  t.is(h.length, 16 + 36);
  t.is(h.subarray(16, 32).toString('hex'), '20010db8000000000000000000000001');
  t.is(h.subarray(32, 48).toString('hex'), '00000000000000000000000000000001');
  t.is(h.readUInt16BE(48), 1234);
  t.is(h.readUInt16BE(50), 80);
});

test('v2 unknown origin: PROXY command, UNSPEC family, no address block', (t) => {
  t.is(encodeProxyV2(undefined).toString('hex'), `${SIG}21000000`);
});

test('v2 Unix: family 0x31, two 108-byte NUL-padded paths', (t) => {
  const o: ProxyOrigin = { source: { family: 'unix', path: '/tmp/a' }, destination: { family: 'unix', path: '/run/b.sock' } };
  const h = encodeProxyV2(o);
  t.is(h.subarray(12, 16).toString('hex'), '213100d8');
  t.is(h.length, 16 + 216);
  t.is(h.subarray(16, 22).toString(), '/tmp/a');
  t.is(h[22], 0);
  t.deepEqual(parseProxyHeader(h)?.origin, o);
});

test('mixed families are written as IPv6 with IPv4-mapped addresses', (t) => {
  const mixed: ProxyOrigin = { source: { family: 'ipv4', address: '10.0.0.1', port: 5 }, destination: { family: 'ipv6', address: '::1', port: 6 } };
  const h = encodeProxyV2(mixed);
  t.is(h[13], 0x21);
  t.is(h.subarray(16, 32).toString('hex'), '00000000000000000000ffff0a000001');
  t.is(parseProxyHeader(h)?.origin?.source.family, 'ipv6');
  t.deepEqual(parseProxyHeader(h)?.origin?.source, { family: 'ipv6', address: '::ffff:10.0.0.1', port: 5 });
});

test('round trips: v1 and v2 parse back to the origin and report the header length', (t) => {
  for (const o of [v4, v6]) {
    const one = encodeProxyV1(o);
    const two = encodeProxyV2(o);
    const p1 = parseProxyHeader(Buffer.concat([one, Buffer.from('GET /')]))!;
    const p2 = parseProxyHeader(Buffer.concat([two, Buffer.from('GET /')]))!;
    t.deepEqual(p1, { version: 1, command: 'proxy', origin: o, length: one.length });
    t.deepEqual(p2, { version: 2, command: 'proxy', origin: o, length: two.length });
  }
});

test('parser: incomplete input asks for more, one byte at a time', (t) => {
  for (const h of [encodeProxyV1(v4), encodeProxyV2(v6)]) {
    for (let n = 1; n < h.length; n++) t.is(parseProxyHeader(h.subarray(0, n)), undefined, `prefix of ${n} bytes`);
    t.truthy(parseProxyHeader(h));
  }
});

test('parser: LOCAL command, TLVs after the address block are skipped', (t) => {
  const local = Buffer.from(`${SIG}20000000`, 'hex');
  t.deepEqual(parseProxyHeader(local), { version: 2, command: 'local', origin: undefined, length: 16 });
  // A v2 header with one NOOP TLV (type 0x04, length 2) after the IPv4 block.
  const base = encodeProxyV2(v4);
  const withTlv = Buffer.concat([base, Buffer.from('04000200ff', 'hex')]);
  withTlv.writeUInt16BE(12 + 5, 14);
  const p = parseProxyHeader(withTlv)!;
  t.is(p.length, 16 + 17);
  t.deepEqual(p.origin, v4);
});

test('parser: garbage, bad versions and malformed v1 lines are refused', (t) => {
  const bad = (b: Buffer | string) => t.throws(() => parseProxyHeader(Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1')), { code: 'JUMPER_ERR_BAD_RECORD' });
  bad('GET / HTTP/1.1\r\n');
  bad('PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n');
  bad('PROXY TCP4 ::1 ::1 1 2\r\n');
  bad('PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n');
  bad('PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n');
  bad(`PROXY ${'x'.repeat(120)}`);
  bad(Buffer.from(`${SIG}31000000`, 'hex')); // version 3
  bad(Buffer.from(`${SIG}2f000000`, 'hex')); // command 15
  bad(Buffer.from(`${SIG}2111000400000000`, 'hex')); // IPv4 block too short
});

test('address block: what ORIGIN carries, and a v2 header made from it', (t) => {
  const block = encodeAddressBlock(v4);
  t.is(block.length, 13);
  t.deepEqual(decodeAddressBlock(block), v4);
  t.deepEqual(proxyV2FromBlock(block), encodeProxyV2(v4));
  t.is(decodeAddressBlock(Buffer.from([0])), undefined);
  t.throws(() => decodeAddressBlock(Buffer.from([0x11, 1, 2])), { code: 'JUMPER_ERR_BAD_RECORD' });
  t.throws(() => decodeAddressBlock(Buffer.from([0x51])), { code: 'JUMPER_ERR_BAD_RECORD' });
});

test('ipEndpoint unmaps dual-stack IPv4 and ignores Unix sockets', (t) => {
  t.deepEqual(ipEndpoint('::ffff:127.0.0.1', 80), { family: 'ipv4', address: '127.0.0.1', port: 80 });
  t.deepEqual(ipEndpoint('::1', 80), { family: 'ipv6', address: '::1', port: 80 });
  t.is(ipEndpoint(undefined, undefined), undefined);
});
