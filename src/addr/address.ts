/**
 * Address strings as operators write them on the command line.
 *
 *   host:port        TCP; a name is resolved again for every new connection
 *   [v6addr]:port    TCP over IPv6
 *   /abs/path.sock   Unix stream socket (listen and connect)
 */
import { isIP } from 'node:net';
import { BadAddressError } from '../errors.js';

export interface TcpAddress {
  kind: 'tcp';
  /** Host name or IP literal (IPv6 without brackets). */
  host: string;
  port: number;
}

export interface UnixAddress {
  kind: 'unix';
  path: string;
}

export type Address = TcpAddress | UnixAddress;

const MAX_PORT = 65535;

function parsePort(text: string, input: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new BadAddressError(`bad port in address "${input}"`);
  const port = Number(text);
  if (port > MAX_PORT) throw new BadAddressError(`port out of range in address "${input}"`);
  return port;
}

/**
 * Parse an address string.
 * @throws BadAddressError (JUMPER_ERR_BAD_ADDRESS) when the form is not recognised.
 */
export function parseAddress(input: string): Address {
  if (typeof input !== 'string' || input.length === 0) {
    throw new BadAddressError('empty address');
  }
  if (input.startsWith('/')) return { kind: 'unix', path: input };
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0 || input[close + 1] !== ':') {
      throw new BadAddressError(`bad IPv6 address "${input}": expected [addr]:port`);
    }
    const host = input.slice(1, close);
    if (isIP(host) !== 6) throw new BadAddressError(`"${host}" is not an IPv6 address in "${input}"`);
    return { kind: 'tcp', host, port: parsePort(input.slice(close + 2), input) };
  }
  const colon = input.lastIndexOf(':');
  if (colon <= 0) {
    throw new BadAddressError(`bad address "${input}": expected host:port, [v6addr]:port or /absolute/path.sock`);
  }
  const host = input.slice(0, colon);
  if (host.includes(':')) {
    throw new BadAddressError(`bad address "${input}": write IPv6 addresses as [addr]:port`);
  }
  return { kind: 'tcp', host, port: parsePort(input.slice(colon + 1), input) };
}

/** The canonical string for an address (the inverse of {@link parseAddress}). */
export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return address.path;
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
