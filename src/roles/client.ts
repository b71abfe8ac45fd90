/**
 * Client jumper: accepts plain streams from the consumer, encrypts, and
 * carries them to a server jumper.
 */
import type { Socket } from 'node:net';
import { loadSodium } from '../crypto/sodium.js';
import type { TunnelKey } from '../keys/key-file.js';
import { DEFAULTS } from '../options.js';
import { runClientConn, type Conn } from '../proto/conn.js';
import { runSpipedClientConn } from '../proto/spiped/conn.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import { Jumper, type CommonOptions } from './jumper.js';

/** Wire protocol: jumper/1 (Noise) or spiped 1.6 for interop. */
export type TunnelProtocol = 'jumper' | 'spiped';

export interface ClientOptions extends CommonOptions {
  /** The pre-shared key (see readKeyFile). */
  key: TunnelKey;
  /** Time from connect until the server jumper's hello. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** 'jumper' (default) or 'spiped' to interoperate with spiped 1.6. */
  protocol?: TunnelProtocol;
  /** spiped only: 'off' is spiped's -f (no Diffie-Hellman), 'require' is -g. Default 'default'. */
  pfs?: PfsMode;
}

export class ClientJumper extends Jumper {
  #key: TunnelKey;
  readonly #handshakeTimeoutMs: number;
  readonly protocol: TunnelProtocol;
  readonly #pfs: PfsMode;
  readonly #keepAlive: boolean;

  constructor(options: ClientOptions) {
    super('client', options, 'server');
    this.#key = options.key;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
    this.protocol = options.protocol ?? 'jumper';
    this.#pfs = options.pfs ?? 'default';
    this.#keepAlive = options.keepAlive ?? DEFAULTS.keepAlive;
  }

  /** The key new streams use; open streams keep theirs. */
  get key(): TunnelKey {
    return this.#key;
  }

  /** Rotate the key for new streams without touching open ones. */
  setKey(key: TunnelKey): void {
    this.#key = key;
  }

  protected override async prepare(): Promise<void> {
    await loadSodium();
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    if (this.protocol === 'spiped') {
      const options = { key: this.#key, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs, pfs: this.#pfs, keepAlive: this.#keepAlive };
      return runSpipedClientConn(conn, socket, options);
    }
    return runClientConn(conn, socket, { key: this.#key, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs });
  }
}

/** Create (not start) a client jumper; call `listen()`. */
export function createClient(options: ClientOptions): ClientJumper {
  return new ClientJumper(options);
}
