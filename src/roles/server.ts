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
import { Jumper, type CommonOptions } from './jumper.js';

export interface ServerOptions extends CommonOptions {
  /** The pre-shared key, or several (tried in order) while rotating keys. */
  key: TunnelKey | readonly TunnelKey[];
  /** Time from accept until the client proved the key and liveness. Default 5000 ms. */
  handshakeTimeoutMs?: number;
}

function keyList(key: TunnelKey | readonly TunnelKey[]): readonly TunnelKey[] {
  const keys = Array.isArray(key) ? (key as readonly TunnelKey[]) : [key as TunnelKey];
  if (keys.length === 0) throw new InvalidArgumentError('a server jumper needs at least one key');
  return keys;
}

export class ServerJumper extends Jumper {
  #keys: readonly TunnelKey[];
  readonly #handshakeTimeoutMs: number;

  constructor(options: ServerOptions) {
    super('server', options, 'provider');
    this.#keys = keyList(options.key);
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
  }

  /** The keys new streams may authenticate with. */
  get keys(): readonly TunnelKey[] {
    return this.#keys;
  }

  /** Rotate keys for new streams without touching open ones. */
  setKey(key: TunnelKey | readonly TunnelKey[]): void {
    this.#keys = keyList(key);
  }

  protected override async prepare(): Promise<void> {
    await loadSodium();
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    return runServerConn(conn, socket, { keys: this.#keys, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs });
  }
}

/** Create (not start) a server jumper; call `listen()`. */
export function createServer(options: ServerOptions): ServerJumper {
  return new ServerJumper(options);
}
