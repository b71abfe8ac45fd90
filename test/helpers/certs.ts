/**
 * A throwaway PKI made with the real openssl: a CA, a server certificate for
 * 127.0.0.1 and client certificates, as PEM files in a temporary directory
 * removed at teardown. Certificates last one day.
 */
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function opensslUnavailableReason(): string | undefined {
  return existsSync('/usr/bin/openssl') ? undefined : '/usr/bin/openssl not found (apt-get install openssl)';
}

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA certificate (PEM file). */
  ca: string;
  /** For a server on 127.0.0.1 (also usable as a client). */
  server: CertPair;
  /** A new client certificate signed by this CA. */
  issueClient(name: string): CertPair;
}

const openssl = (dir: string, args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
};

function newKey(dir: string, name: string): string {
  const key = join(dir, `${name}.key`);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  return key;
}

/** A CA in a fresh directory. */
export function createPki(t: ExecutionContext, caName = 'jumper-test-ca'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caKey = newKey(dir, caName);
  const ca = join(dir, `${caName}.pem`);
  openssl(dir, ['req', '-x509', '-new', '-key', caKey, '-out', ca, '-days', '1', '-subj', `/CN=${caName}`]);
  let serial = 1;
  const issue = (name: string, extensions: string): CertPair => {
    const key = newKey(dir, name);
    const csr = join(dir, `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    const cert = join(dir, `${name}.pem`);
    writeFileSync(ext, extensions);
    openssl(dir, ['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${name}`]);
    openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', String(serial++), '-days', '1', '-out', cert, '-extfile', ext]);
    return { cert, key };
  };
  const server = issue(`${caName}-server`, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  return { dir, ca, server, issueClient: (name) => issue(name, 'extendedKeyUsage=clientAuth\n') };
}
