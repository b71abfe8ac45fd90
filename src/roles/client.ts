/**
 * Client jumper: accepts plain streams from the consumer, encrypts, and
 * carries them to a server jumper.
 */
import type { Socket } from 'node:net';
import { loadSodium } from '../crypto/sodium.js';
import type { TunnelKey } from '../keys/key-file.js';
import { DEFAULTS } from '../options.js';
import { runClientConn, type Conn } from '../proto/conn.js';
import { Jumper, type CommonOptions } from './jumper.js';

export interface ClientOptions extends CommonOptions {
  /** The pre-shared key (see readKeyFile). */
  key: TunnelKey;
  /** Time from connect until the server jumper's hello. Default 5000 ms. */
  handshakeTimeoutMs?: number;
}

export class ClientJumper extends Jumper {
  #key: TunnelKey;
  readonly #handshakeTimeoutMs: number;

  constructor(options: ClientOptions) {
    super('client', options, 'server');
    this.#key = options.key;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
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
    return runClientConn(conn, socket, { key: this.#key, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs });
  }
}

/** Create (not start) a client jumper; call `listen()`. */
export function createClient(options: ClientOptions): ClientJumper {
  return new ClientJumper(options);
}
