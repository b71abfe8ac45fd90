/**
 * Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b (Noise Protocol Framework, rev. 34).
 *
 *   NNpsk0:
 *     -> psk, e
 *     <- e, ee
 *
 * Pure Noise: this module knows nothing of sockets or jumper's wire framing
 * (see handshake.ts). X25519, BLAKE2b and the HKDF come from
 * src/crypto/handshake-primitives.ts (the addon's OpenSSL calls, or
 * node:crypto without it); the handshake's ChaCha20-Poly1305 comes from
 * libsodium. The cacophony vectors check both backends.
 * Set-up rate: ephemeral key pairs are made ahead of time (PrecomputedPool)
 * and the psk token's state is computed once per key, so a handshake's
 * critical path holds only the X25519 agreement and the per-message HKDFs.
 * Section numbers below refer to the Noise specification.
 */
import { chachaNonce } from '../crypto/nonce.js';
import { handshakePrimitives, type HandshakePrimitives, type KeyPair } from '../crypto/handshake-primitives.js';
import { PrecomputedPool } from '../crypto/precomputed-pool.js';
import { sodium } from '../crypto/sodium.js';
import { AuthError, InvalidArgumentError } from '../errors.js';

export const PROTOCOL_NAME = 'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b';
export const DH_LEN = 32;
export const HASH_LEN = 64;
export const BLOCK_LEN = 128;
export const KEY_LEN = 32;
export const TAG_LEN = 16;
export const NONCE_LEN = 12;
export const PSK_LEN = 32;

export type { KeyPair } from '../crypto/handshake-primitives.js';

/** Result of a finished handshake: one key per direction (§5.2 Split). */
export interface TransportKeys {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** The handshake hash h (§11.2 channel binding). */
  handshakeHash: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export { chachaNonce } from '../crypto/nonce.js';

/** §5.1 CipherState, used during the handshake only. */
class CipherState {
  #key: Uint8Array | null = null;
  #nonce = 0;

  initializeKey(key: Uint8Array): void {
    this.#key = key;
    this.#nonce = 0;
  }

  hasKey(): boolean {
    return this.#key !== null;
  }

  clone(): CipherState {
    const copy = new CipherState();
    copy.#key = this.#key;
    copy.#nonce = this.#nonce;
    return copy;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (!this.#key) return plaintext;
    const out = sodium().crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, ad, null, chachaNonce(this.#nonce), this.#key);
    this.#nonce++;
    return out;
  }

  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (!this.#key) return ciphertext;
    let out: Uint8Array;
    try {
      out = sodium().crypto_aead_chacha20poly1305_ietf_decrypt(null, ciphertext, ad, chachaNonce(this.#nonce), this.#key);
    } catch (cause) {
      throw new AuthError('handshake message failed authentication (wrong key, or not a jumper peer)', { cause });
    }
    this.#nonce++;
    return out;
  }
}

/** §5.2 SymmetricState. */
class SymmetricState {
  readonly cipher: CipherState;
  readonly #crypto: HandshakePrimitives;
  chainingKey: Uint8Array;
  h: Uint8Array;

  private constructor(crypto: HandshakePrimitives, chainingKey: Uint8Array, h: Uint8Array, cipher: CipherState) {
    this.#crypto = crypto;
    this.chainingKey = chainingKey;
    this.h = h;
    this.cipher = cipher;
  }

  /** §5.2 InitializeSymmetric. */
  static initialize(crypto: HandshakePrimitives, protocolName: string): SymmetricState {
    const name = new TextEncoder().encode(protocolName);
    let h: Uint8Array;
    if (name.length <= HASH_LEN) {
      h = new Uint8Array(HASH_LEN);
      h.set(name);
    } else {
      h = crypto.hash(name, EMPTY);
    }
    return new SymmetricState(crypto, h, h, new CipherState());
  }

  /** An independent copy (split() wipes the chaining key in place). */
  clone(): SymmetricState {
    return new SymmetricState(this.#crypto, this.chainingKey.slice(), this.h.slice(), this.cipher.clone());
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = this.#crypto.hkdf(this.chainingKey, ikm, 2) as [Uint8Array, Uint8Array];
    this.chainingKey = ck;
    this.cipher.initializeKey(tempK.subarray(0, KEY_LEN));
  }

  mixHash(data: Uint8Array): void {
    this.h = this.#crypto.hash(this.h, data);
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, tempH, tempK] = this.#crypto.hkdf(this.chainingKey, ikm, 3) as [Uint8Array, Uint8Array, Uint8Array];
    this.chainingKey = ck;
    this.mixHash(tempH);
    this.cipher.initializeKey(tempK.subarray(0, KEY_LEN));
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipher.encryptWithAd(this.h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.cipher.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  split(): [Uint8Array, Uint8Array] {
    const [k1, k2] = this.#crypto.hkdf(this.chainingKey, EMPTY, 2) as [Uint8Array, Uint8Array];
    return [k1.subarray(0, KEY_LEN), k2.subarray(0, KEY_LEN)];
  }
}

/** Ephemeral key pairs kept ready; enough for a burst of handshakes in one event-loop turn. */
const EPHEMERAL_POOL_SIZE = 16;
let ephemerals: PrecomputedPool<KeyPair> | undefined;

/** A fresh ephemeral key pair, made ahead of time when possible (each is used once). */
export function takeEphemeralKeyPair(): KeyPair {
  // Created on first use: choosing the primitives may load the addon.
  ephemerals ??= new PrecomputedPool(
    () => handshakePrimitives().generateKeyPair(),
    EPHEMERAL_POOL_SIZE,
    handshakePrimitives().generateKeyPairs,
  );
  return ephemerals.take();
}

/**
 * The state after NNpsk0's first token "psk": it depends only on the
 * prologue and the psk, so it is computed once per key (4 HMACs and 2
 * hashes fewer per handshake). Keyed by the psk object, which key files
 * never modify; a different prologue object recomputes.
 */
const afterPsk = new WeakMap<Uint8Array, { prologue: Uint8Array; crypto: HandshakePrimitives; state: SymmetricState }>();

function stateAfterPsk(crypto: HandshakePrimitives, psk: Uint8Array, prologue: Uint8Array): SymmetricState {
  const cached = afterPsk.get(psk);
  if (cached?.prologue === prologue && cached.crypto === crypto) return cached.state.clone();
  const state = SymmetricState.initialize(crypto, PROTOCOL_NAME);
  state.mixHash(prologue);
  state.mixKeyAndHash(psk);
  afterPsk.set(psk, { prologue, crypto, state });
  return state.clone();
}

/** The key pair for a given private key (test vectors fix the ephemeral). */
export function keyPairFromPrivate(privateKey: Uint8Array, crypto: HandshakePrimitives = handshakePrimitives()): KeyPair {
  return crypto.keyPairFromPrivate(privateKey);
}

export type Role = 'initiator' | 'responder';

export interface HandshakeOptions {
  role: Role;
  psk: Uint8Array;
  prologue: Uint8Array;
  /** Fixed ephemeral key pair; only test vectors should set this. */
  ephemeral?: KeyPair;
  /** Primitives backend (default: handshakePrimitives()); tests run both. */
  primitives?: HandshakePrimitives;
}

/** Bytes of message 1 for a payload of `payloadLen`: e, then the sealed payload. */
export function message1Length(payloadLen: number): number {
  return DH_LEN + payloadLen + TAG_LEN;
}

/** Bytes of message 2 for a payload of `payloadLen`. */
export function message2Length(payloadLen: number): number {
  return DH_LEN + payloadLen + TAG_LEN;
}

/**
 * §5.3 HandshakeState specialised to NNpsk0. Call writeMessage/readMessage in
 * pattern order (initiator: write, read; responder: read, write), then split().
 */
export class NNpsk0Handshake {
  readonly role: Role;
  /** Already past the "psk" token (§9.2), which opens message 1 for both roles. */
  #ss: SymmetricState;
  readonly #crypto: HandshakePrimitives;
  #e: KeyPair | undefined;
  #re: Uint8Array | undefined;
  #step = 0;

  constructor(options: HandshakeOptions) {
    if (options.psk.length !== PSK_LEN) throw new InvalidArgumentError(`psk must be ${PSK_LEN} bytes`);
    this.role = options.role;
    this.#e = options.ephemeral;
    this.#crypto = options.primitives ?? handshakePrimitives();
    this.#ss = stateAfterPsk(this.#crypto, options.psk, options.prologue);
  }

  get finished(): boolean {
    return this.#step === 2;
  }

  /** Write the next message (the role's turn) carrying `payload`. */
  writeMessage(payload: Uint8Array = EMPTY): Uint8Array {
    const ss = this.#ss;
    if (this.role === 'initiator' && this.#step === 0) {
      // -> psk, e (psk was mixed in by the constructor)
      const e = (this.#e ??= this.#ephemeral());
      ss.mixHash(e.publicKey);
      ss.mixKey(e.publicKey); // §9.2: psk handshakes mix e into the key too
      this.#step = 1;
      return concat([e.publicKey, ss.encryptAndHash(payload)]);
    }
    if (this.role === 'responder' && this.#step === 1) {
      // <- e, ee
      const e = (this.#e ??= this.#ephemeral());
      ss.mixHash(e.publicKey);
      ss.mixKey(e.publicKey);
      ss.mixKey(this.#crypto.agree(e.privateKey, this.#re!));
      this.#step = 2;
      return concat([e.publicKey, ss.encryptAndHash(payload)]);
    }
    throw new InvalidArgumentError(`writeMessage out of order for ${this.role} at step ${this.#step}`);
  }

  /**
   * Read the peer's next message and return its payload.
   * @throws AuthError (JUMPER_ERR_AUTH) when the message does not authenticate.
   */
  readMessage(message: Uint8Array): Uint8Array {
    const ss = this.#ss;
    if (message.length < DH_LEN + TAG_LEN) throw new AuthError('handshake message too short');
    const re = message.slice(0, DH_LEN);
    const rest = message.subarray(DH_LEN);
    if (this.role === 'responder' && this.#step === 0) {
      this.#re = re;
      ss.mixHash(re);
      ss.mixKey(re);
      const payload = ss.decryptAndHash(rest);
      this.#step = 1;
      return payload;
    }
    if (this.role === 'initiator' && this.#step === 1) {
      this.#re = re;
      ss.mixHash(re);
      ss.mixKey(re);
      ss.mixKey(this.#crypto.agree(this.#e!.privateKey, re));
      const payload = ss.decryptAndHash(rest);
      this.#step = 2;
      return payload;
    }
    throw new InvalidArgumentError(`readMessage out of order for ${this.role} at step ${this.#step}`);
  }

  /** Transport keys; the handshake's secrets are wiped. */
  split(): TransportKeys {
    if (!this.finished) throw new InvalidArgumentError('split() before the handshake finished');
    const [k1, k2] = this.#ss.split();
    const keys =
      this.role === 'initiator'
        ? { sendKey: k1, recvKey: k2, handshakeHash: this.#ss.h }
        : { sendKey: k2, recvKey: k1, handshakeHash: this.#ss.h };
    // The ephemeral private key lives in OpenSSL and is freed with its handle.
    this.#e = undefined;
    this.#ss.chainingKey.fill(0);
    return keys;
  }

  /** A pooled key pair when the default backend made it, else one from this handshake's backend. */
  #ephemeral(): KeyPair {
    return this.#crypto === handshakePrimitives() ? takeEphemeralKeyPair() : this.#crypto.generateKeyPair();
  }
}
