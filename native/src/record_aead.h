// record_aead.h — one transport record sealed or opened in a single call
// (ChaCha20-Poly1305 IETF from the node binary's OpenSSL, ad empty, nonce =
// 32 zero bits || counter little-endian, as Noise §12.3 and src/proto/record.ts).
// For the records JS still handles (the client's ORIGIN record, the server's
// first records, the JS pipes): node:crypto builds a Cipheriv object per
// record, which cost more than sealing a small record.
#pragma once

#include <napi.h>

namespace jumper {

// sealRecord(key: Uint8Array(32), counter: number, type: number, body: Uint8Array)
//   -> Buffer: length(2, big-endian) || ChaChaPoly(type || body) || tag(16)
Napi::Value SealRecordJs(const Napi::CallbackInfo& info);

// openRecord(key: Uint8Array(32), counter: number, ciphertext: Uint8Array)
//   -> Buffer (type || body), or null when the tag does not verify
Napi::Value OpenRecordJs(const Napi::CallbackInfo& info);

}  // namespace jumper
