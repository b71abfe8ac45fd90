/**
 * Turn one validated link of a `jumper run` configuration into a jumper
 * (not yet listening), reading its key files.
 */
import { readKeyFile, type TunnelKey } from '../keys/key-file.js';
import type { Logger } from '../log/logger.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import type { ProxyVersion } from '../proto/proxy-header.js';
import type { StrategyName } from '../balance/strategy.js';
import { OWNED_SOCKET_MODE, resolveOwner } from '../privilege/drop.js';
import { createBalancer } from '../roles/balancer.js';
import { createClient, type TunnelProtocol } from '../roles/client.js';
import { createForward } from '../roles/forward.js';
import type { CommonOptions, Jumper } from '../roles/jumper.js';
import { createServer } from '../roles/server.js';
import { ETCD_ACCESS_KEYS, type LinkSpec } from './schema.js';
import type { EtcdAccess } from '../discovery/etcd-access.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PreconnectSetting } from '../options.js';


/** The key files of a link, as a list (empty for key-less roles). */
export function keyFiles(spec: LinkSpec): string[] {
  const key = spec.key as string | string[] | undefined;
  return key === undefined ? [] : Array.isArray(key) ? key : [key];
}

/** Read a link's keys. @throws KeyFileError / KeyPermissionsError naming the file. */
export function readLinkKeys(spec: LinkSpec): Promise<TunnelKey[]> {
  const allowInsecurePermissions = spec['allow-insecure-key'] === true;
  return Promise.all(keyFiles(spec).map((file) => readKeyFile(file, { allowInsecurePermissions })));
}

function commonOptions(spec: LinkSpec, logger: Logger): CommonOptions {
  const o: CommonOptions = { listen: spec.listen, logger };
  const connect = spec.connect as string | string[] | undefined;
  if (connect !== undefined) o.connect = connect;
  if (spec.discover !== undefined) o.discover = spec.discover as string;
  if (spec.strategy !== undefined || spec['eject-after'] !== undefined || spec['health-interval'] !== undefined) {
    o.balance = {};
    if (spec.strategy !== undefined) o.balance.strategy = spec.strategy as StrategyName;
    if (spec['eject-after'] !== undefined) o.balance.ejectAfter = spec['eject-after'] as number;
    if (spec['health-interval'] !== undefined) o.balance.healthIntervalMs = spec['health-interval'] as number;
  }
  if (spec['max-connections'] !== undefined) o.maxConnections = spec['max-connections'] as number;
  if (spec['max-handshakes'] !== undefined) o.maxHandshakes = spec['max-handshakes'] as number;
  if (spec['connect-timeout'] !== undefined) o.connectTimeoutMs = spec['connect-timeout'] as number;
  if (spec.keepalive !== undefined) o.keepAlive = spec.keepalive as boolean;
  if (spec.backlog !== undefined) o.backlog = spec.backlog as number;
  if (spec['listen-netns'] !== undefined) o.listenNetns = spec['listen-netns'] as string;
  if (spec['connect-netns'] !== undefined) o.connectNetns = spec['connect-netns'] as string;
  if (spec.allow !== undefined) o.allow = spec.allow as string[];
  if (spec['listen-owner'] !== undefined) {
    o.listenOwner = resolveOwner(spec['listen-owner'] as string);
    o.listenMode = OWNED_SOCKET_MODE;
  }
  if (spec['listen-mode'] !== undefined) o.listenMode = spec['listen-mode'] as number;
  if (spec.start !== undefined) o.start = spec.start as NonNullable<CommonOptions['start']>;
  if (spec.register !== undefined) {
    o.register = { url: spec.register as string, advertise: spec.advertise as string };
    if (spec.weight !== undefined) o.register.weight = spec.weight as number;
    if (spec['lease-ttl'] !== undefined) o.register.ttlSeconds = Math.round((spec['lease-ttl'] as number) / 1000);
    if (spec['deregister-delay'] !== undefined) o.register.deregisterDelayMs = spec['deregister-delay'] as number;
  }
  const etcd = etcdAccess(spec);
  if (etcd) o.etcd = etcd;
  return o;
}

/** The etcd credential keys of a link and the EtcdAccess fields they set; `file`: read from disk. */
const ETCD_ACCESS_FIELDS: readonly { key: (typeof ETCD_ACCESS_KEYS)[number]; option: keyof EtcdAccess; file: boolean }[] = [
  { key: 'etcd-ca', option: 'caFile', file: true },
  { key: 'etcd-cert', option: 'certFile', file: true },
  { key: 'etcd-key', option: 'keyFile', file: true },
  { key: 'etcd-user', option: 'user', file: false },
  { key: 'etcd-password-file', option: 'passwordFile', file: true },
];

function etcdAccess(spec: LinkSpec): EtcdAccess | undefined {
  const access: EtcdAccess = {};
  for (const { key, option } of ETCD_ACCESS_FIELDS) if (spec[key] !== undefined) access[option] = spec[key] as string;
  return Object.keys(access).length > 0 ? access : undefined;
}

/**
 * The contents of a link's etcd files, digested: a reload restarts a link
 * whose certificate, key or password changed although its keys did not,
 * because the etcd client only reads them when it is made. Undefined when a
 * file cannot be read now.
 */
export function etcdFilesDigest(spec: LinkSpec): string | undefined {
  const hash = createHash('sha256');
  for (const { key, file } of ETCD_ACCESS_FIELDS) {
    const path = spec[key];
    if (!file || typeof path !== 'string') continue;
    try {
      hash.update(`${key}\0`).update(readFileSync(path)).update('\0');
    } catch {
      return undefined;
    }
  }
  return hash.digest('hex');
}

function tunnelOptions(spec: LinkSpec): { handshakeTimeoutMs?: number; protocol?: TunnelProtocol; pfs?: PfsMode } {
  const o: { handshakeTimeoutMs?: number; protocol?: TunnelProtocol; pfs?: PfsMode } = {};
  if (spec['handshake-timeout'] !== undefined) o.handshakeTimeoutMs = spec['handshake-timeout'] as number;
  if (spec.protocol !== undefined) o.protocol = spec.protocol as TunnelProtocol;
  if (spec.pfs !== undefined) o.pfs = spec.pfs as PfsMode;
  return o;
}

/**
 * Build (not start) the jumper for one link.
 * @throws the role's own errors (InvalidArgumentError, BadAddressError, key errors).
 */
export async function buildLink(spec: LinkSpec, logger: Logger): Promise<Jumper> {
  const common = commonOptions(spec, logger);
  const proxy = spec['proxy-protocol'] !== undefined ? { proxyProtocol: spec['proxy-protocol'] as ProxyVersion } : {};
  switch (spec.role) {
    case 'client': {
      const [key] = await readLinkKeys(spec);
      const preconnect = {
        ...(spec.preconnect !== undefined ? { preconnect: spec.preconnect as PreconnectSetting } : {}),
        ...(spec['preconnect-idle'] !== undefined ? { preconnectIdleMs: spec['preconnect-idle'] as number } : {}),
      };
      return createClient({ ...common, ...tunnelOptions(spec), ...preconnect, key: key! });
    }
    case 'server':
      return createServer({ ...common, ...tunnelOptions(spec), ...proxy, key: await readLinkKeys(spec) });
    case 'forward':
      return createForward({ ...common, ...proxy });
    case 'balance': {
      const { connect: _unused, start: _none, ...rest } = common;
      const backends = spec.backends as string[] | undefined;
      return createBalancer({ ...rest, ...(backends ? { backends } : {}) });
    }
  }
}
