/**
 * `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: which etcd endpoints to talk to
 * and under which key prefix backends are registered. `etcds://` is the
 * same over TLS (see etcd-access.ts for the CA, client certificate and
 * password).
 */
import { InvalidArgumentError } from '../errors.js';

export interface EtcdLocation {
  /** gRPC endpoints as the etcd3 client wants them: http://host:port, or https:// for etcds://. */
  hosts: string[];
  /** etcds://: talk TLS to every endpoint. */
  tls: boolean;
  /** Key prefix, always ending in '/', e.g. '/jumper/db/'. */
  prefix: string;
  /** The URL as given, for logs. */
  url: string;
}

export function parseEtcdUrl(url: string): EtcdLocation {
  const match = /^(etcds?):\/\/([^/]+)(\/.*)$/.exec(url);
  if (!match) throw new InvalidArgumentError(`"${url}" is not an etcd URL (expected etcd://HOST:PORT[,HOST:PORT]/PREFIX, or etcds:// for TLS)`);
  const tls = match[1] === 'etcds';
  const hosts = match[2]!.split(',').map((endpoint) => {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/.test(endpoint)) {
      throw new InvalidArgumentError(`etcd URL "${url}": endpoint "${endpoint}" must be HOST:PORT`);
    }
    return `${tls ? 'https' : 'http'}://${endpoint}`;
  });
  const path = match[3]!.replace(/\/+$/, '');
  if (path === '') throw new InvalidArgumentError(`etcd URL "${url}": the prefix must not be empty (e.g. etcd://127.0.0.1:2379/jumper/db)`);
  return { hosts, tls, prefix: `${path}/`, url };
}
