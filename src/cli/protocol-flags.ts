/**
 * --protocol, --no-pfs, --require-pfs as the tunnel commands (client,
 * server, pipe) take them, checked for contradictions in one place.
 */
import { InvalidArgumentError } from '../errors.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import type { TunnelProtocol } from '../roles/client.js';

export interface ProtocolFlags {
  protocol: TunnelProtocol;
  /** false with --no-pfs (commander's negated option). */
  pfs: boolean;
  requirePfs?: boolean;
}

/** The library's protocol options; refuses --no-pfs with --require-pfs, and either with the jumper protocol. */
export function protocolOptions(flags: ProtocolFlags): { protocol: TunnelProtocol; pfs: PfsMode } {
  if (!flags.pfs && flags.requirePfs) throw new InvalidArgumentError('--no-pfs and --require-pfs contradict each other');
  if (flags.protocol !== 'spiped' && (!flags.pfs || flags.requirePfs)) {
    throw new InvalidArgumentError('--no-pfs/--require-pfs apply to --protocol spiped; the jumper protocol always has forward secrecy');
  }
  return { protocol: flags.protocol, pfs: !flags.pfs ? 'off' : flags.requirePfs ? 'require' : 'default' };
}
