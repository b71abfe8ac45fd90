/**
 * spiped 1.6 handshake (Tarsnap spiped DESIGN.md, proto_handshake.c, proto_crypt.c).
 *
 *   K        = SHA256(key file)                      (TunnelKey.spipedKey)
 *   C -> S   nonce_C (32 bytes)       S -> C  nonce_S (32 bytes)   (both sent at once)
 *   dk_1     = PBKDF2-SHA256(K, nonce_C || nonce_S, 1 iteration, 64 bytes)
 *            = dhmac_C || dhmac_S
 *   C -> S   y_C || HMAC-SHA256(dhmac_C, y_C)        (256 + 32 bytes)
 *   S        verifies the MAC, y_C < p (and y_C != 1 under -g), then
 *   S -> C   y_S || HMAC-SHA256(dhmac_S, y_S)
 *   C        verifies the same way
 *   dk_2     = PBKDF2-SHA256(K, nonce_C || nonce_S || y_SC, 1, 128 bytes)
 *            = E_C || H_C || E_S || H_S   (AES-256 and HMAC keys, client->server first)
 *
 * y = 2^x mod p in MODP group #14 (RFC 3526), all values 256-byte big-endian.
 * Under -f a side sends y = 1 and uses y_SC = 1 without any DH computation; a
 * DH side that receives y = 1 computes 1^x = 1, so both agree. -g refuses a
 * peer whose y is 1. This module is pure computation: no I/O.
 */
import { createDiffieHellman, getDiffieHellman, pbkdf2Sync, randomBytes, timingSafeEqual, createHmac, type DiffieHellman } from 'node:crypto';
import { AuthError, InvalidArgumentError } from '../../errors.js';

/** Bytes of each side's handshake nonce. */
export const NONCE_BYTES = 32;
/** Bytes of a DH public value (2048-bit group #14). */
export const DH_PUBLIC_BYTES = 256;
/** Bytes of an HMAC-SHA256 tag. */
export const HMAC_BYTES = 32;
/** Bytes of the second handshake message: y || HMAC(dhmac, y). */
export const DH_MESSAGE_BYTES = DH_PUBLIC_BYTES + HMAC_BYTES;
/** Bytes of each MAC key in dk_1. */
export const DHMAC_KEY_BYTES = 32;
/** Bytes of each AES-256 / HMAC key in dk_2. */
export const SESSION_KEY_BYTES = 32;
/** spiped runs PBKDF2 with exactly one iteration: K is already uniformly random. */
const PBKDF2_ITERATIONS = 1;
/** Bytes of spiped's random private value; its exponent is 2^258 + that value. */
const DH_PRIVATE_BYTES = 32;
/** The exponent 2^258 + priv as big-endian: one extra leading byte holding 2^258 / 2^256 = 4. */
const DH_EXPONENT_TOP_BYTE = 0x04;

/**
 * Perfect forward secrecy: 'default' does DH and accepts a -f peer, 'off' is
 * spiped's -f (send y = 1, no DH), 'require' is spiped's -g (refuse y = 1).
 */
export type PfsMode = 'default' | 'off' | 'require';

/** Keys for one direction of the data channel. */
export interface DirectionKeys {
  /** AES-256-CTR key. */
  readonly cipherKey: Buffer;
  /** HMAC-SHA256 key. */
  readonly macKey: Buffer;
}

export interface SessionKeys {
  send: DirectionKeys;
  recv: DirectionKeys;
  /** True when y_SC came from a real DH exchange (both sides had PFS). */
  forwardSecret: boolean;
}

/** The group #14 modulus, from OpenSSL's built-in RFC 3526 table. */
const GROUP14_PRIME: Buffer = getDiffieHellman('modp14').getPrime();
const GENERATOR = Buffer.from([2]);
/** The DH value spiped's -f sends, and the shared value y_SC it implies. */
const DH_ONE: Buffer = (() => {
  const one = Buffer.alloc(DH_PUBLIC_BYTES);
  one[DH_PUBLIC_BYTES - 1] = 1;
  return one;
})();

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Left-pad a big-endian integer to `length` bytes (OpenSSL strips leading zeros). */
function padTo(value: Buffer, length: number): Buffer {
  if (value.length === length) return value;
  const out = Buffer.alloc(length);
  value.copy(out, length - value.length);
  return out;
}

function isOne(y: Buffer): boolean {
  return y.equals(DH_ONE);
}

/** Which handshake side: 'client' is spiped -e, 'server' is spiped -d. */
export type HandshakeRole = 'client' | 'server';

/**
 * One side of a spiped handshake. Usage, client: send `nonce`; on the peer's
 * nonce call `receiveNonce`, send `dhMessage()`; on the server's DH message
 * call `finish`. Server: send `nonce`; `receiveNonce`; `verifyPeerDh` on the
 * client's DH message, then send `dhMessage()` and call `finish`.
 */
export class SpipedHandshake {
  readonly role: HandshakeRole;
  /** Our 32-byte random nonce, to be sent first. */
  readonly nonce: Buffer;
  readonly #K: Uint8Array;
  readonly #pfs: PfsMode;
  #peerNonce: Buffer | undefined;
  #dhmacLocal: Buffer | undefined;
  #dhmacRemote: Buffer | undefined;
  #dh: DiffieHellman | undefined;
  #peerY: Buffer | undefined;

  /**
   * @param K SHA-256 of the key file (TunnelKey.spipedKey), 32 bytes.
   * @throws InvalidArgumentError when K is not 32 bytes.
   */
  constructor(role: HandshakeRole, K: Uint8Array, pfs: PfsMode) {
    if (K.length !== SESSION_KEY_BYTES) throw new InvalidArgumentError(`spiped key must be ${SESSION_KEY_BYTES} bytes`);
    this.role = role;
    this.#K = K;
    this.#pfs = pfs;
    this.nonce = randomBytes(NONCE_BYTES);
  }

  #noncesCS(): [Buffer, Buffer] {
    const peer = this.#peerNonce;
    if (!peer) throw new InvalidArgumentError('spiped handshake: peer nonce not received yet');
    return this.role === 'client' ? [this.nonce, peer] : [peer, this.nonce];
  }

  /** Record the peer's nonce and derive dk_1 = dhmac_C || dhmac_S. */
  receiveNonce(peerNonce: Buffer): void {
    if (peerNonce.length !== NONCE_BYTES) throw new InvalidArgumentError(`spiped nonce must be ${NONCE_BYTES} bytes`);
    this.#peerNonce = Buffer.from(peerNonce);
    const [nonceC, nonceS] = this.#noncesCS();
    const dk1 = pbkdf2Sync(this.#K, Buffer.concat([nonceC, nonceS]), PBKDF2_ITERATIONS, 2 * DHMAC_KEY_BYTES, 'sha256');
    const dhmacC = dk1.subarray(0, DHMAC_KEY_BYTES);
    const dhmacS = dk1.subarray(DHMAC_KEY_BYTES);
    this.#dhmacLocal = this.role === 'client' ? dhmacC : dhmacS;
    this.#dhmacRemote = this.role === 'client' ? dhmacS : dhmacC;
  }

  /** Our y || HMAC(dhmac_local, y): y = 1 under -f, else 2^(2^258 + priv) mod p like spiped. */
  dhMessage(): Buffer {
    const dhmac = this.#dhmacLocal;
    if (!dhmac) throw new InvalidArgumentError('spiped handshake: nonces not exchanged yet');
    let y: Buffer;
    if (this.#pfs === 'off') {
      y = DH_ONE;
    } else {
      const dh = createDiffieHellman(GROUP14_PRIME, GENERATOR);
      const exponent = randomBytes(DH_PRIVATE_BYTES + 1);
      exponent[0] = DH_EXPONENT_TOP_BYTE;
      dh.setPrivateKey(exponent);
      y = padTo(dh.generateKeys(), DH_PUBLIC_BYTES);
      this.#dh = dh;
    }
    return Buffer.concat([y, hmac(dhmac, y)]);
  }

  /**
   * Check the peer's y || h in spiped's order: MAC, then y < p, then (under
   * 'require') y != 1.
   * @throws AuthError reason 'bad_key' when the MAC does not verify (the peer
   *         holds another key); reason 'bad_dh_value' when y >= p; reason
   *         'pfs_required' when the peer runs without PFS (-f) and we require it.
   */
  verifyPeerDh(message: Buffer): void {
    const dhmac = this.#dhmacRemote;
    if (!dhmac) throw new InvalidArgumentError('spiped handshake: nonces not exchanged yet');
    if (message.length !== DH_MESSAGE_BYTES) throw new InvalidArgumentError(`spiped DH message must be ${DH_MESSAGE_BYTES} bytes`);
    const y = message.subarray(0, DH_PUBLIC_BYTES);
    const tag = message.subarray(DH_PUBLIC_BYTES);
    if (!timingSafeEqual(hmac(dhmac, y), tag)) {
      throw new AuthError(`spiped ${this.role === 'client' ? 'server' : 'client'} failed to authenticate: wrong key`, { reason: 'bad_key' });
    }
    if (Buffer.compare(y, GROUP14_PRIME) >= 0) {
      throw new AuthError('spiped peer sent a Diffie-Hellman value not below the group modulus', { reason: 'bad_dh_value' });
    }
    if (this.#pfs === 'require' && isOne(y)) {
      throw new AuthError('spiped peer runs without perfect forward secrecy (-f) but it is required', { reason: 'pfs_required' });
    }
    this.#peerY = Buffer.from(y);
  }

  /**
   * Derive dk_2 from y_SC. Call after dhMessage() and verifyPeerDh().
   * @throws AuthError reason 'bad_dh_value' when OpenSSL refuses the peer's
   *         value (0 or p-1: spiped would compute on, we refuse).
   */
  finish(): SessionKeys {
    const peerY = this.#peerY;
    if (!peerY) throw new InvalidArgumentError('spiped handshake: peer DH value not verified yet');
    let ySC: Buffer;
    if (this.#pfs === 'off' || isOne(peerY)) {
      ySC = DH_ONE; // we sent 1, or 1^x = 1: no DH computation on either side.
    } else {
      const dh = this.#dh;
      if (!dh) throw new InvalidArgumentError('spiped handshake: our DH message was not made yet');
      try {
        ySC = padTo(dh.computeSecret(peerY), DH_PUBLIC_BYTES);
      } catch (err) {
        throw new AuthError('spiped peer sent a degenerate Diffie-Hellman value', { cause: err, reason: 'bad_dh_value' });
      }
    }
    const [nonceC, nonceS] = this.#noncesCS();
    const dk2 = pbkdf2Sync(this.#K, Buffer.concat([nonceC, nonceS, ySC]), PBKDF2_ITERATIONS, 4 * SESSION_KEY_BYTES, 'sha256');
    const k = SESSION_KEY_BYTES;
    const client: DirectionKeys = { cipherKey: dk2.subarray(0, k), macKey: dk2.subarray(k, 2 * k) };
    const server: DirectionKeys = { cipherKey: dk2.subarray(2 * k, 3 * k), macKey: dk2.subarray(3 * k, 4 * k) };
    this.#dh = undefined;
    return {
      send: this.role === 'client' ? client : server,
      recv: this.role === 'client' ? server : client,
      forwardSecret: ySC !== DH_ONE,
    };
  }
}
