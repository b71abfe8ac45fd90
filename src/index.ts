/**
 * jumper's public API. Everything not exported here is internal.
 */
export { createClient, ClientJumper, type ClientOptions, type TunnelProtocol } from './roles/client.js';
export type { PfsMode } from './proto/spiped/handshake.js';
export { createServer, ServerJumper, type ServerOptions } from './roles/server.js';
export { createForward, ForwardJumper, type ForwardOptions } from './roles/forward.js';
export { Jumper, type CommonOptions, type ConnSummary, type JumperStats, type JumperEvents, type RoleName } from './roles/jumper.js';
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
export { DEFAULTS } from './options.js';
export * from './errors.js';
export { PROTOCOL_VERSION } from './proto/handshake.js';
export { nativeAvailable as nativeHandoffAvailable } from './native/binding.js';
export { startAcceptor, type Acceptor, type AcceptorOptions } from './activation/acceptor.js';
