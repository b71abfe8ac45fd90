/**
 * Client jumper: accepts plain streams from the consumer, encrypts, and
 * carries them to a server jumper.
 */
import type { Socket } from 'node:net';
import { loadSodium } from '../crypto/sodium.js';
import type { TunnelKey } from '../keys/key-file.js';
import { InvalidArgumentError } from '../errors.js';
import { AUTO_PRECONNECT_WIRES, DEFAULTS, isPreconnectSetting, MAX_PRECONNECT_WIRES, type PreconnectSetting } from '../options.js';
import { runClientConn, type Conn } from '../proto/conn.js';
import { runSpipedClientConn } from '../proto/spiped/conn.js';
import type { PfsMode } from '../proto/spiped/handshake.js';
import { Slots } from '../addr/slots.js';
import { Jumper, type CommonOptions, type ListenOptions } from './jumper.js';
import { Preconnector, type PreconnectStats } from './preconnect.js';

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
  /**
   * jumper protocol only: wires to the server kept dialled and handshaken
   * ahead of demand (src/roles/preconnect.ts). Default 'auto': one wire
   * while streams come in a row, none for a lone stream; 0 = off. With the
   * spiped protocol 'auto' means off.
   */
  preconnect?: PreconnectSetting;
  /** A preconnected wire is retired after this long unused; below the server's handshake timeout. Default 2000 ms. */
  preconnectIdleMs?: number;
}

export class ClientJumper extends Jumper {
  #key: TunnelKey;
  readonly #handshakeTimeoutMs: number;
  readonly protocol: TunnelProtocol;
  readonly #pfs: PfsMode;
  readonly #keepAlive: boolean;
  readonly #preconnect: Preconnector | undefined;
  /** Dials and handshakes in flight (maxHandshakes); preconnected wires are not counted. */
  readonly #handshakeSlots: Slots;
  /** The preconnect in effect: 'auto', a number of wires, or 0 (off). */
  readonly preconnectSetting: PreconnectSetting;

  constructor(options: ClientOptions) {
    super('client', options, 'server');
    this.#key = options.key;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
    this.protocol = options.protocol ?? 'jumper';
    this.#pfs = options.pfs ?? 'default';
    this.#keepAlive = options.keepAlive ?? DEFAULTS.keepAlive;
    // Checked by Jumper with the other limits; a client's default is lower than a server's.
    this.#handshakeSlots = new Slots(options.maxHandshakes ?? DEFAULTS.clientMaxHandshakes);
    const setting = options.preconnect ?? DEFAULTS.preconnect;
    if (!isPreconnectSetting(setting)) {
      throw new InvalidArgumentError(`preconnect must be 'auto' or a whole number of wires up to ${MAX_PRECONNECT_WIRES}, got ${String(setting)}`);
    }
    const auto = setting === 'auto';
    // spiped servers allow no idle handshaken wire: 'auto' turns off, a number is an error.
    const size = auto ? (this.protocol === 'jumper' ? AUTO_PRECONNECT_WIRES : 0) : setting;
    this.preconnectSetting = size === 0 ? 0 : setting;
    if (size > 0) {
      if (this.protocol !== 'jumper') throw new InvalidArgumentError('preconnect needs the jumper protocol (spiped servers allow no idle handshaken wire)');
      const maxIdleMs = options.preconnectIdleMs ?? DEFAULTS.preconnectIdleMs;
      if (!(maxIdleMs > 0)) throw new InvalidArgumentError(`preconnect idle time must be positive, got ${maxIdleMs}`);
      this.#preconnect = new Preconnector({
        size,
        maxIdleMs,
        sustainedOnly: auto,
        handshakeTimeoutMs: this.#handshakeTimeoutMs,
        dial: this.dial,
        key: () => this.#key,
        logger: this.logger,
        onOutcome: (outcome) => this.emit('preconnect', outcome),
      });
    }
  }

  /** Streams dialling or handshaking with the server now, and streams waiting for their turn to. */
  handshakeStats(): { inFlight: number; waiting: number } {
    return { inFlight: this.#handshakeSlots.inUse, waiting: this.#handshakeSlots.waiting };
  }

  /** Preconnect counters; undefined when preconnect is off. */
  preconnectStats(): PreconnectStats | undefined {
    return this.#preconnect?.stats();
  }

  /** The key new streams use; open streams keep theirs. */
  get key(): TunnelKey {
    return this.#key;
  }

  /** Rotate the key for new streams without touching open ones. */
  setKey(key: TunnelKey): void {
    this.#key = key;
    this.#preconnect?.keyChanged();
  }

  protected override async prepare(): Promise<void> {
    await loadSodium();
  }

  override async listen(options: ListenOptions = {}): Promise<this> {
    await super.listen(options);
    // A fixed pool is filled at once (once serving starts); 'auto' waits for streams to come in a row.
    const preconnect = this.#preconnect;
    if (preconnect && this.preconnectSetting !== 'auto') {
      if (options.serveAfter) void options.serveAfter.then(() => preconnect.warm(), () => preconnect.warm());
      else preconnect.warm();
    }
    return this;
  }

  override async close(options: { drainTimeoutMs?: number; stopAcceptingAtOnce?: boolean } = {}): Promise<void> {
    this.#preconnect?.close();
    await super.close(options);
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    if (this.protocol === 'spiped') {
      const options = { key: this.#key, dial: this.dial, handshakeTimeoutMs: this.#handshakeTimeoutMs, pfs: this.#pfs, keepAlive: this.#keepAlive, handshakeSlots: this.#handshakeSlots };
      return runSpipedClientConn(conn, socket, options);
    }
    const preconnect = this.#preconnect;
    return runClientConn(conn, socket, {
      key: this.#key,
      dial: this.dial,
      handshakeTimeoutMs: this.#handshakeTimeoutMs,
      handshakeSlots: this.#handshakeSlots,
      ...(preconnect ? { takeReady: () => preconnect.take() } : {}),
    });
  }
}

/** Create (not start) a client jumper; call `listen()`. */
export function createClient(options: ClientOptions): ClientJumper {
  return new ClientJumper(options);
}
