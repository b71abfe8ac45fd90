/**
 * Server jumper: accepts encrypted streams, authenticates them, and forwards
 * the plaintext to the provider — only after the client proved the key and
 * liveness.
 */
import type { Socket } from 'node:net';
import { loadSodium } from '../crypto/sodium.js';
import { InvalidArgumentError } from '../errors.js';
import type { TunnelKey } from '../keys/key-file.js';
import { DEFAULTS } from '../options.js';
import { runServerConn, type Conn } from '../proto/conn.js';
import { runSpipedServerConn } from '../proto/spiped/conn.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import type { ProxyVersion } from '../proto/proxy-header.js';
import { Jumper, type CommonOptions } from './jumper.js';
import type { TunnelProtocol } from './client.js';

export interface ServerOptions extends CommonOptions {
  /** The pre-shared key, or several (tried in order) while rotating keys. */
  key: TunnelKey | readonly TunnelKey[];
  /** Time from accept until the client proved the key and liveness. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** 'jumper' (default) or 'spiped' to interoperate with spiped 1.6. */
  protocol?: TunnelProtocol;
  /** spiped only: 'off' is spiped's -f (no Diffie-Hellman), 'require' is -g. Default 'default'. */
  pfs?: PfsMode;
  /**
   * Write a PROXY header (v1 or v2) to the provider before any data, with the
   * consumer's address the client jumper sent in its ORIGIN record.
   */
  proxyProtocol?: ProxyVersion;
}

function keyList(key: TunnelKey | readonly TunnelKey[]): readonly TunnelKey[] {
  const keys = Array.isArray(key) ? (key as readonly TunnelKey[]) : [key as TunnelKey];
  if (keys.length === 0) throw new InvalidArgumentError('a server jumper needs at least one key');
  return keys;
}

export class ServerJumper extends Jumper {
  #keys: readonly TunnelKey[];
  readonly #handshakeTimeoutMs: number;
  readonly protocol: TunnelProtocol;
  readonly #pfs: PfsMode;
  readonly #keepAlive: boolean;
  readonly #proxyProtocol: ProxyVersion | undefined;

  constructor(options: ServerOptions) {
    super('server', options, 'provider');
    this.#keys = keyList(options.key);
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
    this.protocol = options.protocol ?? 'jumper';
    this.#pfs = options.pfs ?? 'default';
    this.#keepAlive = options.keepAlive ?? DEFAULTS.keepAlive;
    if (this.protocol === 'spiped' && this.#keys.length > 1) {
      // spiped's handshake cannot tell which key a client used.
      throw new InvalidArgumentError('--protocol spiped takes exactly one key');
    }
    this.#proxyProtocol = options.proxyProtocol;
    if (this.#proxyProtocol && this.protocol === 'spiped') {
      throw new InvalidArgumentError('--proxy-protocol needs the jumper protocol: spiped carries no origin address');
    }
  }

  /** The keys new streams may authenticate with. */
  get keys(): readonly TunnelKey[] {
    return this.#keys;
  }

  /** Rotate keys for new streams without touching open ones. */
  setKey(key: TunnelKey | readonly TunnelKey[]): void {
    const keys = keyList(key);
    if (this.protocol === 'spiped' && keys.length > 1) throw new InvalidArgumentError('--protocol spiped takes exactly one key');
    this.#keys = keys;
  }

  protected override async prepare(): Promise<void> {
    await loadSodium();
  }

  protected async serve(conn: Conn, socket: Socket): Promise<void> {
    if (this.protocol === 'spiped') {
      // spiped streams take their slot at accept, handshake included, as in spiped.
      await this.admitStream(conn);
      // Cut while it waited for a slot (drain timeout): the socket was never adopted.
      if (conn.closed) return void socket.destroy();
      const options = { key: this.#keys[0]!, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs, pfs: this.#pfs, keepAlive: this.#keepAlive };
      return runSpipedServerConn(conn, socket, options);
    }
    const options = { keys: this.#keys, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs, admit: () => this.admitStream(conn) };
    return runServerConn(conn, socket, this.#proxyProtocol ? { ...options, proxyProtocol: this.#proxyProtocol } : options);
  }
}

/** Create (not start) a server jumper; call `listen()`. */
export function createServer(options: ServerOptions): ServerJumper {
  return new ServerJumper(options);
}
