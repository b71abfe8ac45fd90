/**
 * --etcd-ca, --etcd-cert, --etcd-key, --etcd-user, --etcd-password-file: how
 * a jumper with --discover or --register reaches a TLS etcd and logs in.
 * The password is only ever read from a file (systemd LoadCredential=, a
 * secret mount), never taken on the command line where `ps` shows it.
 */
import type { Command } from 'commander';
import type { EtcdAccess } from '../discovery/etcd-access.js';
import { refuseUnless } from './option-checks.js';

export interface EtcdFlags {
  discover?: string;
  register?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

const KEYS = ['etcdCa', 'etcdCert', 'etcdKey', 'etcdUser', 'etcdPasswordFile'] as const;

export function addEtcdAccessOptions(cmd: Command): Command {
  return cmd
    .option('--etcd-ca <file>', "with an etcds:// URL: PEM CA that signed etcd's certificate (default: Node's built-in public CAs)")
    .option('--etcd-cert <file>', 'with an etcds:// URL: PEM client certificate, for an etcd run with --client-cert-auth (needs --etcd-key)')
    .option('--etcd-key <file>', 'PEM private key of --etcd-cert')
    .option('--etcd-user <name>', 'etcd user, when etcd has authentication enabled (needs --etcd-password-file)')
    .option('--etcd-password-file <file>', "file whose first line is --etcd-user's password");
}

/** The library's `etcd` option; refused without --discover or --register (file checks happen in the library). */
export function etcdAccessOption(flags: EtcdFlags, cmd: Command): { etcd?: EtcdAccess } {
  refuseUnless(cmd, KEYS, flags.discover !== undefined || flags.register !== undefined, '--discover or --register');
  const etcd: EtcdAccess = {};
  if (flags.etcdCa !== undefined) etcd.caFile = flags.etcdCa;
  if (flags.etcdCert !== undefined) etcd.certFile = flags.etcdCert;
  if (flags.etcdKey !== undefined) etcd.keyFile = flags.etcdKey;
  if (flags.etcdUser !== undefined) etcd.user = flags.etcdUser;
  if (flags.etcdPasswordFile !== undefined) etcd.passwordFile = flags.etcdPasswordFile;
  return Object.keys(etcd).length > 0 ? { etcd } : {};
}

/**
 * grpc-js passes an etcds:// endpoint's IP address as the TLS server name,
 * and Node warns about that once per process (DEP0123) with a plain-text
 * line in the middle of the JSON log. The certificate is still checked
 * against the IP; drop that one warning, nothing else.
 */
export function dropIpServerNameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
