/**
 * `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: which etcd endpoints to talk to
 * and under which key prefix backends are registered.
 */
import { InvalidArgumentError } from '../errors.js';

export interface EtcdLocation {
  /** gRPC endpoints as the etcd3 client wants them: http://host:port. */
  hosts: string[];
  /** Key prefix, always ending in '/', e.g. '/jumper/db/'. */
  prefix: string;
  /** The URL as given, for logs. */
  url: string;
}

export function parseEtcdUrl(url: string): EtcdLocation {
  const match = /^etcd:\/\/([^/]+)(\/.*)$/.exec(url);
  if (!match) throw new InvalidArgumentError(`"${url}" is not an etcd URL (expected etcd://HOST:PORT[,HOST:PORT]/PREFIX)`);
  const hosts = match[1]!.split(',').map((endpoint) => {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/.test(endpoint)) {
      throw new InvalidArgumentError(`etcd URL "${url}": endpoint "${endpoint}" must be HOST:PORT`);
    }
    return `http://${endpoint}`;
  });
  const path = match[2]!.replace(/\/+$/, '');
  if (path === '') throw new InvalidArgumentError(`etcd URL "${url}": the prefix must not be empty (e.g. etcd://127.0.0.1:2379/jumper/db)`);
  return { hosts, prefix: `${path}/`, url };
}
