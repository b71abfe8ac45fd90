/**
 * jumper's public API. Everything not exported here is internal.
 */
export { createClient, ClientJumper, type ClientOptions, type TunnelProtocol } from './roles/client.js';
export type { PfsMode } from './proto/spiped/handshake.js';
export { createServer, ServerJumper, type ServerOptions } from './roles/server.js';
export { createForward, ForwardJumper, type ForwardOptions } from './roles/forward.js';
export { createBalancer, BalanceJumper, type BalancerOptions } from './roles/balancer.js';
export {
  Jumper,
  type CommonOptions,
  type ConnSummary,
  type JumperStats,
  type ListenOptions,
  type JumperEvents,
  type RoleName,
  type BalanceOptions,
  type RegisterOptions,
} from './roles/jumper.js';
export { parseBackendSpec, type BackendSpec, type BackendStatus } from './balance/backend.js';
export type { BackendInput } from './balance/pool.js';
export { STRATEGIES, type StrategyName } from './balance/strategy.js';
export { EtcdDiscovery, type EtcdDiscoveryOptions } from './discovery/etcd-discovery.js';
export { EtcdRegistration, type EtcdRegistrationOptions } from './discovery/etcd-registration.js';
export { parseEtcdUrl, type EtcdLocation } from './discovery/etcd-url.js';
export { loadEtcdAccess, type EtcdAccess } from './discovery/etcd-access.js';
export { RECORD_VERSION, encodeRecord, decodeRecord, type RegistrationRecord } from './discovery/registration-record.js';
export {
  readKeyFile,
  writeNewKeyFile,
  deriveKey,
  generateKey,
  KEY_BYTES,
  MIN_KEY_FILE_BYTES,
  type TunnelKey,
  type ReadKeyOptions,
  type WriteKeyOptions,
} from './keys/key-file.js';
export { parseAddress, formatAddress, type Address, type TcpAddress, type UnixAddress } from './addr/address.js';
export type { ListenTarget } from './addr/listener.js';
export type { Dialer } from './addr/dial.js';
export type { Logger } from './log/logger.js';
export { DEFAULTS, MAX_BUSY_POLL_US } from './options.js';
export * from './errors.js';
export { PROTOCOL_VERSION } from './proto/handshake.js';
export { nativeAvailable as nativeHandoffAvailable } from './native/binding.js';
export { applyBusyPoll, setBusyPoll } from './native/busy-poll.js';
export { startAcceptor, type Acceptor, type AcceptorOptions } from './activation/acceptor.js';
export { parseConfig, loadConfig } from './config/load.js';
export { Supervisor, type SupervisorOptions, type ReloadResult } from './config/run.js';
export type { RunSpec, LinkSpec, ConfigIssue } from './config/schema.js';
export { JumperMetrics } from './admin/metrics.js';
export { startAdminServer, type AdminServer, type AdminServerOptions } from './admin/server.js';
export { encodeProxyHeader, parseProxyHeader, type ProxyVersion } from './proto/proxy-header.js';
