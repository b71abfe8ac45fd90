// noise_crypto.h — the handshake's primitives for Noise
// NNpsk0_25519_ChaChaPoly_BLAKE2b, from the OpenSSL inside the node binary
// (no extra library is linked). One function per primitive; the Noise state
// machine itself stays in TypeScript (src/proto/noise.ts), which picks these
// or node:crypto (src/crypto/handshake-primitives.ts).
//
// Why native: node:crypto wraps every X25519 key in a KeyObject (JWK import
// on each agreement) and every HMAC in a Hmac object; per handshake that was
// about half of a jumper's CPU per connection, and set-up rate is CPU-bound.
#pragma once

#include <napi.h>

namespace jumper {

// x25519KeyPair(privateKey?: Uint8Array(32)) -> { privateKey: External, publicKey: Buffer(32) }
// Without an argument the private key is fresh from OpenSSL's CSPRNG and never
// exists as bytes in the JS heap; with one (test vectors only) it is imported.
Napi::Value X25519KeyPairJs(const Napi::CallbackInfo& info);

// x25519KeyPairBatch(count: 1..64) -> Promise<Array<{ privateKey, publicKey }>>
// Fresh key pairs made on a libuv thread-pool thread: the ephemeral keys a
// jumper keeps ready are made off the JS thread, so a connection's critical
// path on the event loop never pays for a key generation.
Napi::Value X25519KeyPairBatchJs(const Napi::CallbackInfo& info);

// x25519Agree(privateKey: External, publicKey: Uint8Array(32)) -> Buffer(32)
// Throws an Error with code 'EBADKEY' for a low-order peer key (all-zero result).
Napi::Value X25519AgreeJs(const Napi::CallbackInfo& info);

// noiseHkdf(chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3) -> Buffer(64 * outputs)
// HKDF of Noise §4.3 over HMAC-BLAKE2b-512.
Napi::Value NoiseHkdfJs(const Napi::CallbackInfo& info);

// blake2b(a: Uint8Array, b: Uint8Array) -> Buffer(64): BLAKE2b-512(a || b), Noise's MixHash.
Napi::Value Blake2bJs(const Napi::CallbackInfo& info);

}  // namespace jumper
