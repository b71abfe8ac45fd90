/**
 * --allow CIDR: which peers a listener serves. A peer outside the list is
 * reset at accept, before any byte is read and before anything is dialled.
 */
import { BlockList, type Socket } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { parseCidr } from '../config/schema.js';

/**
 * Build the allow list from addresses and CIDR blocks ("10.0.0.0/8", "::1").
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) for an entry that is neither.
 */
export function createAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const cidr = parseCidr(entry.trim());
    if (!cidr) throw new InvalidArgumentError(`--allow ${entry}: expected an IP address or CIDR such as 10.0.0.0/8 or fd00::/8`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

/**
 * Is the socket's peer in the list? IPv4 peers on a dual-stack listener
 * (::ffff:a.b.c.d) match IPv4 entries. A peer without an IP address (Unix
 * socket) never matches.
 */
export function isAllowed(list: BlockList, socket: Socket): boolean {
  const address = socket.remoteAddress;
  if (!address) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return list.check(mapped[1]!, 'ipv4');
  return list.check(address, socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4');
}
