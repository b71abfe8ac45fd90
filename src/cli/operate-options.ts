/**
 * Operating options shared by every long-running command: the admin
 * endpoint, privilege drop, --allow, Unix listener mode/owner, busy
 * polling, and the PROXY protocol toward the provider.
 */
import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULTS, MAX_BUSY_POLL_US } from '../options.js';
import { OWNED_SOCKET_MODE, resolveOwner } from '../privilege/drop.js';
import type { CommonOptions } from '../roles/jumper.js';
import type { ProxyVersion } from '../proto/proxy-header.js';
import { collect, parseBusyPoll } from './parse.js';

export interface OperateFlags {
  admin?: string;
  user?: string;
  group?: string;
  allow?: string[];
  listenMode?: string;
  listenOwner?: string;
  busyPoll?: number;
}


/** What --busy-poll says, also in `jumper run --help`. */
export const BUSY_POLL_HELP =
  `native data-path threads poll this many microseconds (up to ${MAX_BUSY_POLL_US}) after each wake-up before sleeping again: lower latency in VMs where waking a halted CPU is slow, for up to that much CPU per wake-up; 0 = off`;

/** --admin, --user, --group, --allow, --listen-mode, --listen-owner, --busy-poll. */
export function addOperateOptions(cmd: Command): Command {
  return cmd
    .option('--admin <addr>', 'serve /metrics (Prometheus), /healthz and /status (JSON) over HTTP on host:port or /path.sock; keep it on loopback')
    .option('--user <user>', 'after listening (and entering namespaces), drop root and run as this user (name or uid)')
    .option('--group <group>', "with --user: run as this group (default: the user's primary group)")
    .option('--allow <cidr>', 'serve only peers in this CIDR or address (repeatable); others are reset at accept and logged as not_allowed', collect)
    .option('--listen-mode <mode>', 'Unix socket listener: file mode in octal, e.g. 0660')
    .option('--listen-owner <user[:group]>', 'Unix socket listener: owner of the socket file (mode defaults to 0660)')
    .option('--busy-poll <microseconds>', BUSY_POLL_HELP, parseBusyPoll, DEFAULTS.busyPollUs);
}

/** --proxy-protocol v1|v2 (server and forward). */
export function addProxyProtocolOption(cmd: Command): Command {
  return cmd.addOption(
    new Option('--proxy-protocol <version>', "write a PROXY protocol header with the consumer's real address to the provider before any data").choices(['v1', 'v2']),
  );
}

/** The library options the flags stand for. */
export function operateOptions(flags: OperateFlags): Pick<CommonOptions, 'allow' | 'listenMode' | 'listenOwner'> {
  const out: Pick<CommonOptions, 'allow' | 'listenMode' | 'listenOwner'> = {};
  if (flags.allow) out.allow = flags.allow;
  if (flags.listenOwner !== undefined) {
    out.listenOwner = resolveOwner(flags.listenOwner);
    out.listenMode = OWNED_SOCKET_MODE;
  }
  if (flags.listenMode !== undefined) {
    if (!/^0?[0-7]{3}$/.test(flags.listenMode)) throw new InvalidArgumentError(`--listen-mode ${flags.listenMode}: expected an octal mode such as 0660`);
    out.listenMode = parseInt(flags.listenMode, 8);
  }
  return out;
}

/** The PROXY version flag, if given. */
export function proxyProtocolOption(flags: { proxyProtocol?: string }): { proxyProtocol?: ProxyVersion } {
  return flags.proxyProtocol ? { proxyProtocol: flags.proxyProtocol as ProxyVersion } : {};
}
