// record_format.h — the jumper/1 transport record, for every native file
// that seals or opens one (record_aead.cc, record_pump.cc). Must match
// src/proto/record.ts and docs/PROTOCOL.md §4:
//   record     = length(2, big-endian) || ciphertext(length)
//   ciphertext = ChaCha20-Poly1305-IETF(key, nonce, ad = empty, type(1) || body) || tag(16)
//   nonce      = 4 zero bytes || counter (64-bit little-endian)
// Types: 0 DATA (empty body allowed, ignored), 1 END (no body), 2 ABORT (ASCII reason).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace jumper {
namespace record {

constexpr size_t kLenBytes = 2;
constexpr size_t kTypeBytes = 1;
constexpr size_t kTagBytes = 16;
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kMaxCiphertext = 65535;
constexpr size_t kMaxBody = kMaxCiphertext - kTagBytes - kTypeBytes;  // 65518
constexpr size_t kMinCiphertext = kTypeBytes + kTagBytes;               // 17
constexpr size_t kMaxRecord = kLenBytes + kMaxCiphertext;               // 65537
constexpr size_t kMaxAbortReason = 64;
// Same limit as record.ts (Number.MAX_SAFE_INTEGER): the JS side must be
// able to count what native code did.
constexpr uint64_t kMaxNonce = (uint64_t{1} << 53) - 1;
constexpr uint8_t kTypeData = 0;
constexpr uint8_t kTypeEnd = 1;
constexpr uint8_t kTypeAbort = 2;

inline void MakeNonce(uint64_t counter, uint8_t nonce[kNonceBytes]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

}  // namespace record
}  // namespace jumper
