/**
 * PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2):
 * the few bytes a proxy writes to the provider before any stream byte, so the
 * provider learns who really connected.
 *
 *   v1 = "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n"  or  "PROXY UNKNOWN\r\n"
 *   v2 = signature(12) || ver_cmd(1) || fam(1) || len(2, BE) || address block(len)
 *
 * The v2 family byte and address block are also what the jumper/1 ORIGIN
 * record carries (docs/PROTOCOL.md §4.2), so the server turns an ORIGIN body
 * into a v2 header by prefixing 16 bytes.
 */
import { isIP } from 'node:net';
import { BadRecordError, InvalidArgumentError } from '../errors.js';

export type ProxyVersion = 'v1' | 'v2';

/** One end of the proxied connection. */
export type ProxyEndpoint = { family: 'ipv4' | 'ipv6'; address: string; port: number } | { family: 'unix'; path: string };

/** Who connected (source) to which listening address (destination); undefined = unknown. */
export interface ProxyOrigin {
  source: ProxyEndpoint;
  destination: ProxyEndpoint;
}

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, ver_cmd, fam, len. */
export const V2_FIXED_BYTES = 16;
export const V2_VERSION = 0x20;
export const V2_CMD_LOCAL = 0x00;
export const V2_CMD_PROXY = 0x01;
/** Family byte: address family (high nibble) | transport (low nibble, 1 = STREAM). */
export const V2_FAM_UNSPEC = 0x00;
export const V2_FAM_TCP4 = 0x11;
export const V2_FAM_TCP6 = 0x21;
export const V2_FAM_UNIX_STREAM = 0x31;
export const V2_TCP4_BLOCK = 12;
export const V2_TCP6_BLOCK = 36;
export const V2_UNIX_PATH = 108;
export const V2_UNIX_BLOCK = 2 * V2_UNIX_PATH;
/** The spec's bound on a v1 line including CRLF. */
export const V1_MAX_BYTES = 107;
const V1_PREFIX = 'PROXY ';

/** '::ffff:1.2.3.4' is an IPv4 peer on a dual-stack socket: report it as IPv4. */
function unmap(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * The endpoint of a socket address as Node reports it (remoteAddress/Port,
 * localAddress/Port); undefined when the address is not an IP (Unix sockets).
 */
export function ipEndpoint(address: string | undefined, port: number | undefined): ProxyEndpoint | undefined {
  if (!address || port === undefined) return undefined;
  const plain = unmap(address).split('%')[0]!;
  const v = isIP(plain);
  if (v === 4) return { family: 'ipv4', address: plain, port };
  if (v === 6) return { family: 'ipv6', address: plain, port };
  return undefined;
}

/** Both ends in one IP family: a mixed pair is written as IPv6 (IPv4-mapped). */
function sameFamily(origin: ProxyOrigin): ProxyOrigin | undefined {
  const { source: s, destination: d } = origin;
  if (s.family === 'unix' || d.family === 'unix') return s.family === d.family ? origin : undefined;
  if (s.family === d.family) return origin;
  const map = (e: typeof s): typeof s => (e.family === 'ipv4' ? { family: 'ipv6', address: `::ffff:${e.address}`, port: e.port } : e);
  return { source: map(s), destination: map(d) };
}

function ipv6Bytes(address: string): Buffer {
  // Expand "::" and an embedded dotted IPv4 tail, then write 8 groups.
  let text = address.split('%')[0]!; // a zone index has no place on the wire
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const b = ipv4Bytes(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  if (groups.length !== 8) throw new InvalidArgumentError(`not an IPv6 address: ${address}`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function formatIpv6(bytes: Buffer): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes.readUInt16BE(10) === 0xffff) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups (RFC 5952), as Node prints addresses.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function pathBytes(path: string): Buffer {
  const out = Buffer.alloc(V2_UNIX_PATH);
  const bytes = Buffer.from(path, 'utf8');
  if (bytes.length > V2_UNIX_PATH) throw new InvalidArgumentError(`Unix path longer than ${V2_UNIX_PATH} bytes: ${path}`);
  bytes.copy(out);
  return out;
}

function readPath(block: Buffer): string {
  const end = block.indexOf(0);
  return block.subarray(0, end < 0 ? block.length : end).toString('utf8');
}

/**
 * The v2 family byte followed by the address block; for an unknown origin
 * (or one v2 cannot express) just the UNSPEC family byte.
 */
export function encodeAddressBlock(origin: ProxyOrigin | undefined): Buffer {
  const o = origin && sameFamily(origin);
  if (!o) return Buffer.from([V2_FAM_UNSPEC]);
  const { source: s, destination: d } = o;
  if (s.family === 'unix' && d.family === 'unix') return Buffer.concat([Buffer.from([V2_FAM_UNIX_STREAM]), pathBytes(s.path), pathBytes(d.path)]);
  if (s.family === 'unix' || d.family === 'unix') return Buffer.from([V2_FAM_UNSPEC]);
  const v4 = s.family === 'ipv4';
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(s.port, 0);
  ports.writeUInt16BE(d.port, 2);
  const bytes = v4 ? ipv4Bytes : ipv6Bytes;
  return Buffer.concat([Buffer.from([v4 ? V2_FAM_TCP4 : V2_FAM_TCP6]), bytes(s.address), bytes(d.address), ports]);
}

/**
 * Inverse of {@link encodeAddressBlock}: family byte + address block (extra
 * bytes, e.g. v2 TLVs, are ignored).
 * @throws BadRecordError when the block is shorter than its family needs or the family is unknown.
 */
export function decodeAddressBlock(data: Buffer): ProxyOrigin | undefined {
  if (data.length < 1) throw new BadRecordError('empty address block');
  const fam = data[0]!;
  const block = data.subarray(1);
  const need = (n: number) => {
    if (block.length < n) throw new BadRecordError(`address block for family 0x${fam.toString(16)} needs ${n} bytes, got ${block.length}`);
  };
  switch (fam) {
    case V2_FAM_UNSPEC:
      return undefined;
    case V2_FAM_TCP4:
      need(V2_TCP4_BLOCK);
      return {
        source: { family: 'ipv4', address: [...block.subarray(0, 4)].join('.'), port: block.readUInt16BE(8) },
        destination: { family: 'ipv4', address: [...block.subarray(4, 8)].join('.'), port: block.readUInt16BE(10) },
      };
    case V2_FAM_TCP6:
      need(V2_TCP6_BLOCK);
      return {
        source: { family: 'ipv6', address: formatIpv6(block.subarray(0, 16)), port: block.readUInt16BE(32) },
        destination: { family: 'ipv6', address: formatIpv6(block.subarray(16, 32)), port: block.readUInt16BE(34) },
      };
    case V2_FAM_UNIX_STREAM:
      need(V2_UNIX_BLOCK);
      return {
        source: { family: 'unix', path: readPath(block.subarray(0, V2_UNIX_PATH)) },
        destination: { family: 'unix', path: readPath(block.subarray(V2_UNIX_PATH, V2_UNIX_BLOCK)) },
      };
    default:
      throw new BadRecordError(`unsupported address family byte 0x${fam.toString(16)}`);
  }
}

/** A v1 line; "PROXY UNKNOWN\r\n" when the origin is unknown or not TCP. */
export function encodeProxyV1(origin: ProxyOrigin | undefined): Buffer {
  const o = origin && sameFamily(origin);
  if (!o || o.source.family === 'unix' || o.destination.family === 'unix') return Buffer.from(`${V1_PREFIX}UNKNOWN\r\n`, 'ascii');
  const { source: s, destination: d } = o;
  const proto = s.family === 'ipv4' ? 'TCP4' : 'TCP6';
  return Buffer.from(`${V1_PREFIX}${proto} ${s.address} ${d.address} ${s.port} ${d.port}\r\n`, 'ascii');
}

/** A v2 header with command PROXY (UNSPEC family, no addresses, when the origin is unknown). */
export function encodeProxyV2(origin: ProxyOrigin | undefined): Buffer {
  return proxyV2FromBlock(encodeAddressBlock(origin));
}

/** A v2 header around an already encoded family byte + address block (an ORIGIN body). */
export function proxyV2FromBlock(block: Buffer): Buffer {
  const head = Buffer.alloc(V2_FIXED_BYTES);
  V2_SIGNATURE.copy(head);
  head[12] = V2_VERSION | V2_CMD_PROXY;
  head[13] = block[0] ?? V2_FAM_UNSPEC;
  head.writeUInt16BE(Math.max(0, block.length - 1), 14);
  return Buffer.concat([head, block.subarray(1)]);
}

/** The header of the given version. */
export function encodeProxyHeader(version: ProxyVersion, origin: ProxyOrigin | undefined): Buffer {
  return version === 'v1' ? encodeProxyV1(origin) : encodeProxyV2(origin);
}

/** What a provider learns from a header. */
export interface ParsedProxyHeader {
  version: 1 | 2;
  /** 'local' (v2 LOCAL: use the real connection endpoints) or 'proxy'. */
  command: 'local' | 'proxy';
  /** Undefined for UNKNOWN / UNSPEC / LOCAL. */
  origin: ProxyOrigin | undefined;
  /** Header length: stream bytes start at this offset. */
  length: number;
}

/**
 * Parse a PROXY header at the start of `data`.
 * @returns the header, or undefined when more bytes are needed.
 * @throws BadRecordError when the bytes are not a valid v1 or v2 header.
 */
export function parseProxyHeader(data: Buffer): ParsedProxyHeader | undefined {
  const sigLen = Math.min(data.length, V2_SIGNATURE.length);
  if (data.subarray(0, sigLen).equals(V2_SIGNATURE.subarray(0, sigLen))) {
    if (data.length < V2_FIXED_BYTES) return undefined;
    const verCmd = data[12]!;
    if ((verCmd & 0xf0) !== V2_VERSION) throw new BadRecordError(`PROXY v2: bad version nibble 0x${verCmd.toString(16)}`);
    const cmd = verCmd & 0x0f;
    if (cmd !== V2_CMD_LOCAL && cmd !== V2_CMD_PROXY) throw new BadRecordError(`PROXY v2: bad command ${cmd}`);
    const len = data.readUInt16BE(14);
    if (data.length < V2_FIXED_BYTES + len) return undefined;
    const length = V2_FIXED_BYTES + len;
    if (cmd === V2_CMD_LOCAL) return { version: 2, command: 'local', origin: undefined, length };
    const origin = decodeAddressBlock(Buffer.concat([data.subarray(13, 14), data.subarray(V2_FIXED_BYTES, length)]));
    return { version: 2, command: 'proxy', origin, length };
  }
  const prefixLen = Math.min(data.length, V1_PREFIX.length);
  if (data.subarray(0, prefixLen).toString('latin1') !== V1_PREFIX.slice(0, prefixLen)) throw new BadRecordError('not a PROXY header');
  const crlf = data.indexOf('\r\n', 0, 'latin1');
  if (crlf < 0) {
    if (data.length >= V1_MAX_BYTES) throw new BadRecordError(`PROXY v1 line longer than ${V1_MAX_BYTES} bytes`);
    return undefined;
  }
  const length = crlf + 2;
  if (length > V1_MAX_BYTES) throw new BadRecordError(`PROXY v1 line longer than ${V1_MAX_BYTES} bytes`);
  const parts = data.subarray(V1_PREFIX.length, crlf).toString('latin1').split(' ');
  if (parts[0] === 'UNKNOWN') return { version: 1, command: 'proxy', origin: undefined, length };
  if (parts.length !== 5 || (parts[0] !== 'TCP4' && parts[0] !== 'TCP6')) throw new BadRecordError('PROXY v1: malformed line');
  const family = parts[0] === 'TCP4' ? 'ipv4' : 'ipv6';
  const ipVersion = family === 'ipv4' ? 4 : 6;
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  const port = (p: string) => {
    if (!/^(0|[1-9]\d{0,4})$/.test(p) || Number(p) > 65535) throw new BadRecordError(`PROXY v1: bad port ${p}`);
    return Number(p);
  };
  if (isIP(src) !== ipVersion || isIP(dst) !== ipVersion) throw new BadRecordError('PROXY v1: address does not match the protocol');
  return {
    version: 1,
    command: 'proxy',
    origin: { source: { family, address: src, port: port(sport) }, destination: { family, address: dst, port: port(dport) } },
    length,
  };
}
