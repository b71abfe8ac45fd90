/**
 * How a jumper proves itself to etcd and checks etcd in turn: TLS (an
 * `etcds://` URL, a CA, a client certificate) and etcd's own user/password
 * authentication. Files are read and checked once, when the jumper is
 * made, so a wrong path or a key that does not match its certificate is one
 * clear line at start instead of an etcd that stays "unreachable".
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import type { EtcdLocation } from './etcd-url.js';

/** Credentials for etcd; the names in messages are the CLI flags and config keys (etcd-ca, ...). */
export interface EtcdAccess {
  /** PEM file with the CA certificate(s) that signed etcd's server certificate. Default: Node's built-in public CAs (not the OS store). etcds:// only. */
  caFile?: string;
  /** PEM client certificate (chain), for an etcd run with --client-cert-auth. Needs keyFile. etcds:// only. */
  certFile?: string;
  /** PEM private key of certFile. */
  keyFile?: string;
  /** etcd user, when etcd has authentication enabled. Needs password or passwordFile. */
  user?: string;
  password?: string;
  /** A file holding the password (its first line), so it stays off the command line. */
  passwordFile?: string;
}

/** What the etcd3 client takes from an EtcdAccess. */
export interface EtcdClientAccess {
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  auth?: { username: string; password: string };
}

function readPem(label: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new InvalidArgumentError(`${label} ${file}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, { cause });
  }
}

function parsed<T>(label: string, file: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (cause) {
    throw new InvalidArgumentError(`${label} ${file}: not a PEM ${what}`, { cause });
  }
}

function readPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new InvalidArgumentError(`etcd-password-file ${file}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, { cause });
  }
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password === '') throw new InvalidArgumentError(`etcd-password-file ${file}: its first line is empty`);
  return password;
}

/**
 * Check `access` against the URL it goes with and read its files.
 * @throws InvalidArgumentError for a TLS file with a plain etcd:// URL, a
 * certificate without its key (or a key that is not its), a user without a
 * password (or the reverse), and an unreadable or malformed file.
 */
export function loadEtcdAccess(access: EtcdAccess | undefined, location: EtcdLocation): EtcdClientAccess {
  if (access === undefined) return {};
  const { caFile, certFile, keyFile, user, password, passwordFile } = access;
  const tlsFiles = [caFile, certFile, keyFile].some((f) => f !== undefined);
  if (tlsFiles && !location.tls) {
    throw new InvalidArgumentError(`etcd-ca, etcd-cert and etcd-key are for TLS: use an etcds:// URL instead of ${location.url}`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new InvalidArgumentError('etcd-cert and etcd-key go together: give both or neither');
  }
  if (password !== undefined && passwordFile !== undefined) throw new InvalidArgumentError('give the etcd password or etcd-password-file, not both');
  const hasPassword = password !== undefined || passwordFile !== undefined;
  if (user !== undefined && !hasPassword) throw new InvalidArgumentError('etcd-user needs etcd-password-file');
  if (user === undefined && hasPassword) throw new InvalidArgumentError('etcd-password-file needs etcd-user');
  if (user === '') throw new InvalidArgumentError('etcd-user must not be empty');

  const result: EtcdClientAccess = {};
  if (tlsFiles) {
    const ca = caFile === undefined ? undefined : readPem('etcd-ca', caFile);
    if (ca) parsed('etcd-ca', caFile!, 'certificate', () => new X509Certificate(ca));
    let certChain: Buffer | undefined;
    let privateKey: Buffer | undefined;
    if (certFile !== undefined && keyFile !== undefined) {
      certChain = readPem('etcd-cert', certFile);
      privateKey = readPem('etcd-key', keyFile);
      const cert = parsed('etcd-cert', certFile, 'certificate', () => new X509Certificate(certChain!));
      const key = parsed('etcd-key', keyFile, 'private key', () => createPrivateKey(privateKey!));
      if (!cert.checkPrivateKey(key)) throw new InvalidArgumentError(`etcd-key ${keyFile} is not the key of etcd-cert ${certFile}`);
    }
    // gRPC takes null roots as "the defaults" (Node's built-in CAs): the etcd3 typings just do not say so.
    result.credentials = {
      rootCertificate: ca ?? (null as unknown as Buffer),
      ...(privateKey ? { privateKey } : {}),
      ...(certChain ? { certChain } : {}),
    };
  }
  if (user !== undefined) result.auth = { username: user, password: password ?? readPassword(passwordFile!) };
  return result;
}
