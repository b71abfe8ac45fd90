/**
 * The handshake's primitives for Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b:
 * X25519 key pairs and agreement, BLAKE2b (MixHash) and Noise's HKDF over
 * HMAC-BLAKE2b. The Noise state machine (src/proto/noise.ts) is written
 * once against this interface; two backends provide it:
 *
 * - `native`: the addon's OpenSSL calls (native/src/noise_crypto.cc), with
 *   X25519 from the system's libsodium when the addon was built with it
 *   (native/src/x25519_sodium.cc: about 40 % less CPU per key generation
 *   and agreement than OpenSSL 3.0). The default when the addon is built:
 *   node:crypto builds a KeyObject per X25519 key (a JWK import per
 *   agreement) and a Hmac object per HMAC, which made the handshake about
 *   half of a jumper's CPU per connection, and connection set-up rate is
 *   CPU-bound.
 * - `native-openssl`: the same with OpenSSL's X25519: the default when the
 *   addon was built without libsodium, listed after `native` (for tests)
 *   when it was built with it. The name says which X25519 is in use.
 * - `node`: node:crypto and libsodium-wrappers, for machines without the
 *   addon (or JUMPER_NO_NATIVE_CRYPTO=1).
 *
 * All keep ephemeral private keys in native memory (OpenSSL's or the
 * addon's), never as bytes in the JS heap. The cacophony vectors run against
 * each (test/noise.test.ts).
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { AuthError } from '../errors.js';
import { BackendChoice, nativeCryptoExports } from './backends.js';
import { sodium } from './sodium.js';

/** Opaque private key: an OpenSSL key owned by the backend that made it. */
declare const privateKeyBrand: unique symbol;
export type PrivateKey = { readonly [privateKeyBrand]: true };

export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: PrivateKey;
}

export interface HandshakePrimitives {
  readonly name: 'native' | 'native-openssl' | 'node';
  /** A fresh X25519 key pair from the CSPRNG. */
  generateKeyPair(): KeyPair;
  /**
   * `count` fresh key pairs made off the JS thread (a libuv pool thread);
   * only backends that can do so have it.
   */
  generateKeyPairs?(count: number): Promise<KeyPair[]>;
  /** The key pair of a given private key (test vectors fix the ephemeral keys). */
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair;
  /**
   * X25519(privateKey, publicKey).
   * @throws AuthError for a low-order public key (an all-zero shared secret).
   */
  agree(privateKey: PrivateKey, publicKey: Uint8Array): Uint8Array;
  /** BLAKE2b-512(a || b). */
  hash(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** Noise §4.3 HKDF: `outputs` 64-byte outputs. */
  hkdf(chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array[];
}

export { NO_NATIVE_CRYPTO_ENV } from './backends.js';

const HASH_LEN = 64;

const invalidPeerKey = (cause: unknown): Error => new AuthError('peer sent an invalid ephemeral key', { cause });

type RawKeyPair = { privateKey: unknown; publicKey: Uint8Array };

/** The addon's exports used here (native/src/noise_crypto.h). */
interface NativeNoiseCrypto {
  x25519KeyPair(privateKey?: Uint8Array): RawKeyPair;
  x25519KeyPairBatch(count: number): Promise<RawKeyPair[]>;
  x25519Agree(privateKey: unknown, publicKey: Uint8Array): Uint8Array;
  noiseHkdf(chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array;
  blake2b(a: Uint8Array, b: Uint8Array): Uint8Array;
}

/** The X25519 calls of one implementation in the addon. */
interface NativeX25519 {
  keyPair(privateKey?: Uint8Array): RawKeyPair;
  keyPairBatch(count: number): Promise<RawKeyPair[]>;
  agree(privateKey: unknown, publicKey: Uint8Array): Uint8Array;
}

/** Only in an addon built with libsodium (native/src/x25519_sodium.h). */
interface NativeSodiumX25519 {
  sodiumX25519KeyPair(privateKey?: Uint8Array): RawKeyPair;
  sodiumX25519KeyPairBatch(count: number): Promise<RawKeyPair[]>;
  sodiumX25519Agree(privateKey: unknown, publicKey: Uint8Array): Uint8Array;
}

const opensslX25519 = (addon: NativeNoiseCrypto): NativeX25519 => ({
  keyPair: (privateKey) => addon.x25519KeyPair(privateKey),
  keyPairBatch: (count) => addon.x25519KeyPairBatch(count),
  agree: (privateKey, publicKey) => addon.x25519Agree(privateKey, publicKey),
});

const sodiumX25519 = (addon: NativeSodiumX25519): NativeX25519 => ({
  keyPair: (privateKey) => addon.sodiumX25519KeyPair(privateKey),
  keyPairBatch: (count) => addon.sodiumX25519KeyPairBatch(count),
  agree: (privateKey, publicKey) => addon.sodiumX25519Agree(privateKey, publicKey),
});

function splitOutputs(out: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const parts = [out.subarray(0, HASH_LEN), out.subarray(HASH_LEN, 2 * HASH_LEN)];
  if (outputs === 3) parts.push(out.subarray(2 * HASH_LEN, 3 * HASH_LEN));
  return parts;
}

function nativeBackend(name: 'native' | 'native-openssl', addon: NativeNoiseCrypto, x25519: NativeX25519): HandshakePrimitives {
  return {
    name,
    generateKeyPair: () => x25519.keyPair() as KeyPair,
    generateKeyPairs: (count) => x25519.keyPairBatch(count) as Promise<KeyPair[]>,
    keyPairFromPrivate: (privateKey) => x25519.keyPair(privateKey) as KeyPair,
    agree(privateKey, publicKey) {
      try {
        return x25519.agree(privateKey, publicKey);
      } catch (cause) {
        throw invalidPeerKey(cause);
      }
    },
    hash: (a, b) => addon.blake2b(a, b),
    hkdf: (chainingKey, ikm, outputs) => splitOutputs(addon.noiseHkdf(chainingKey, ikm, outputs), outputs),
  };
}

/** HMAC (RFC 2104) over BLAKE2b: OpenSSL pads to BLAKE2b's 128-byte block, as Noise §4.3 requires. */
function hmac(key: Uint8Array, a: Uint8Array, b?: Uint8Array): Uint8Array {
  const mac = createHmac('blake2b512', key).update(a);
  if (b !== undefined) mac.update(b);
  return mac.digest();
}

const nodeBackend: HandshakePrimitives = {
  name: 'node',
  generateKeyPair() {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return { privateKey: privateKey as unknown as PrivateKey, publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url') };
  },
  keyPairFromPrivate(privateKey) {
    const publicKey = sodium().crypto_scalarmult_base(privateKey);
    const jwk = { kty: 'OKP', crv: 'X25519', d: Buffer.from(privateKey).toString('base64url'), x: Buffer.from(publicKey).toString('base64url') };
    return { privateKey: createPrivateKey({ key: jwk, format: 'jwk' }) as unknown as PrivateKey, publicKey };
  },
  agree(privateKey, publicKey) {
    try {
      const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
      // OpenSSL refuses low-order points (an all-zero shared secret).
      return diffieHellman({ privateKey: privateKey as unknown as KeyObject, publicKey: peer });
    } catch (cause) {
      throw invalidPeerKey(cause);
    }
  },
  hash(a, b) {
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    return sodium().crypto_generichash(HASH_LEN, both, null);
  },
  hkdf(chainingKey, ikm, outputs) {
    const tempKey = hmac(chainingKey, ikm);
    const out1 = hmac(tempKey, Uint8Array.of(1));
    const out2 = hmac(tempKey, out1, Uint8Array.of(2));
    if (outputs === 2) return [out1, out2];
    return [out1, out2, hmac(tempKey, out2, Uint8Array.of(3))];
  },
};

const NATIVE_EXPORTS = ['x25519KeyPair', 'x25519KeyPairBatch', 'x25519Agree', 'noiseHkdf', 'blake2b'] as const;

const SODIUM_EXPORTS = ['sodiumX25519KeyPair', 'sodiumX25519KeyPairBatch', 'sodiumX25519Agree'] as const;

/** The addon's backends, preferred first: with libsodium's X25519 when built with it, then OpenSSL's. */
function nativeBackends(): HandshakePrimitives[] {
  const addon = nativeCryptoExports<NativeNoiseCrypto>(NATIVE_EXPORTS);
  if (!addon) return [];
  const sodium = nativeCryptoExports<NativeSodiumX25519>(SODIUM_EXPORTS);
  return sodium
    ? [nativeBackend('native', addon, sodiumX25519(sodium)), nativeBackend('native-openssl', addon, opensslX25519(addon))]
    : [nativeBackend('native-openssl', addon, opensslX25519(addon))];
}

const backends = new BackendChoice<HandshakePrimitives>(() => nativeBackends()[0], nodeBackend);

/** The backend handshakes use: native (or native-openssl) when the addon is built, else node:crypto. Decided once. */
export function handshakePrimitives(): HandshakePrimitives {
  return backends.get();
}

/** Every backend available here, the default first, for tests that prove they agree. */
export function allHandshakePrimitives(): HandshakePrimitives[] {
  return [...nativeBackends(), nodeBackend];
}
