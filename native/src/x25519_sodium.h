// x25519_sodium.h — X25519 from the system's libsodium, built only when
// libsodium's headers are found at build time (binding.gyp asks pkg-config;
// JUMPER_HAVE_LIBSODIUM). Same calls and contracts as the OpenSSL ones in
// noise_crypto.h, under the prefix "sodium":
//
//   sodiumX25519KeyPair(privateKey?) -> { privateKey: External, publicKey: Buffer(32) }
//   sodiumX25519KeyPairBatch(count: 1..64) -> Promise<Array<{ privateKey, publicKey }>>
//   sodiumX25519Agree(privateKey: External, publicKey: Uint8Array(32)) -> Buffer(32)
//     throws code 'EBADKEY' for a low-order peer key (all-zero result)
//
// Why a second X25519: on the machines measured, libsodium's key generation
// (a fixed-base multiplication) takes 29 µs against OpenSSL 3.0's 53 µs, and
// its agreement 30 µs against 49 µs through OpenSSL's EVP calls; each
// connection makes one of each on both jumpers, and set-up rate is bound by
// that CPU. Private keys live in native memory only (wiped when freed), as
// with OpenSSL; the keys of one implementation are refused by the other.
#pragma once

#include <napi.h>

namespace jumper {

// Registers the three exports when built with libsodium; otherwise nothing.
void RegisterSodiumX25519(Napi::Env env, Napi::Object exports);

}  // namespace jumper
