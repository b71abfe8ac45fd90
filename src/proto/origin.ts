/**
 * The consumer's original address, carried from the client jumper to the
 * server jumper in the ORIGIN record and handed to the provider as a PROXY
 * header (docs/PROTOCOL.md §4.2).
 */
import type { Socket } from 'node:net';
import {
  decodeAddressBlock,
  encodeAddressBlock,
  encodeProxyV1,
  ipEndpoint,
  proxyV2FromBlock,
  type ProxyOrigin,
  type ProxyVersion,
  V2_FAM_TCP4,
  V2_FAM_TCP6,
  V2_FAM_UNIX_STREAM,
  V2_TCP4_BLOCK,
  V2_TCP6_BLOCK,
  V2_UNIX_BLOCK,
} from './proxy-header.js';

/** Who connected to an accepted socket, and where; undefined for Unix sockets. */
export function originOf(accepted: Socket): ProxyOrigin | undefined {
  const source = ipEndpoint(accepted.remoteAddress, accepted.remotePort);
  const destination = ipEndpoint(accepted.localAddress, accepted.localPort);
  return source && destination ? { source, destination } : undefined;
}

/** The ORIGIN record body for an accepted consumer socket. */
export function originBody(accepted: Socket): Buffer {
  return encodeAddressBlock(originOf(accepted));
}

/**
 * The PROXY header for the provider. `block` is the ORIGIN body the client
 * sent, or undefined (older client, spiped): the header then says UNKNOWN.
 * @throws BadRecordError (JUMPER_ERR_BAD_RECORD) for a malformed ORIGIN body.
 */
export function proxyHeaderFromOrigin(version: ProxyVersion, block: Buffer | undefined): Buffer {
  const origin = block ? decodeAddressBlock(block) : undefined; // validates the block either way
  if (version === 'v1') return encodeProxyV1(origin);
  return proxyV2FromBlock(block && origin ? block.subarray(0, 1 + blockLength(block[0]!)) : Buffer.from([0]));
}

/** Address block size for a family byte (ORIGIN bodies carry no TLVs we would forward). */
function blockLength(fam: number): number {
  return fam === V2_FAM_TCP4 ? V2_TCP4_BLOCK : fam === V2_FAM_TCP6 ? V2_TCP6_BLOCK : fam === V2_FAM_UNIX_STREAM ? V2_UNIX_BLOCK : 0;
}

/** A PROXY header for a plain forwarder: from the accepted socket itself. */
export function proxyHeaderForSocket(version: ProxyVersion, accepted: Socket): Buffer {
  const block = encodeAddressBlock(originOf(accepted));
  return proxyHeaderFromOrigin(version, block);
}

/** Short text for logs: "1.2.3.4:5678". */
export function describeOrigin(block: Buffer | undefined): string | undefined {
  if (!block) return undefined;
  try {
    const s = decodeAddressBlock(block)?.source;
    if (!s) return undefined;
    return s.family === 'unix' ? s.path || 'unix' : s.family === 'ipv6' ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
  } catch {
    return undefined;
  }
}
