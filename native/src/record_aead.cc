// record_aead.cc — see record_aead.h. Argument checks throw TypeError /
// RangeError; an OpenSSL failure other than a bad tag throws an Error.
#include "record_aead.h"

#include "record_format.h"
#include "typed_args.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace jumper {
namespace {

using namespace record;  // the wire format (record_format.h)

// Counters stop where a JS number still counts exactly (record.ts MAX_NONCE).
constexpr double kMaxCounter = static_cast<double>(kMaxNonce);

// One cipher context per thread, re-keyed per call (ChaCha20's key set-up is
// a copy; fetching the algorithm is what costs).
struct ThreadCipher {
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ThreadCipher() = default;
  ~ThreadCipher() {
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(cipher);
  }
  ThreadCipher(const ThreadCipher&) = delete;
  ThreadCipher& operator=(const ThreadCipher&) = delete;
};

ThreadCipher& Cipher(Napi::Env env) {
  thread_local ThreadCipher state;
  if (state.cipher == nullptr || state.ctx == nullptr) {
    throw Napi::Error::New(env, "OpenSSL ChaCha20-Poly1305 unavailable");
  }
  return state;
}

const uint8_t* Key(const Napi::CallbackInfo& info) {
  return FixedUint8ArrayArg(info, 0, "key", kKeyBytes).Data();
}

void Nonce(const Napi::CallbackInfo& info, uint8_t out[kNonceBytes]) {
  const Napi::Value counter = info.Length() > 1 ? info[1] : info.Env().Undefined();
  MakeNonce(static_cast<uint64_t>(WholeNumberValue(info.Env(), counter, "counter", 0, kMaxCounter)), out);
}

}  // namespace

Napi::Value SealRecordJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* key = Key(info);
  uint8_t nonce[kNonceBytes];
  Nonce(info, nonce);
  const int type = IntArg(info, 2, "type", 0, 255);
  Napi::Uint8Array body = Uint8ArrayArg(info, 3, "body");
  const size_t text = kTypeBytes + body.ByteLength();
  if (text + kTagBytes > kMaxCiphertext) throw Napi::RangeError::New(env, "body too long for one record");

  Napi::Buffer<uint8_t> record = Napi::Buffer<uint8_t>::New(env, kLenBytes + text + kTagBytes);
  uint8_t* p = record.Data();
  const size_t ct_len = text + kTagBytes;
  p[0] = static_cast<uint8_t>(ct_len >> 8);
  p[1] = static_cast<uint8_t>(ct_len);
  p[kLenBytes] = static_cast<uint8_t>(type);
  if (body.ByteLength() > 0) std::memcpy(p + kLenBytes + kTypeBytes, body.Data(), body.ByteLength());

  ThreadCipher& c = Cipher(env);
  int out = 0, final_out = 0;
  if (EVP_CipherInit_ex(c.ctx, c.cipher, nullptr, key, nonce, 1) != 1 ||
      EVP_EncryptUpdate(c.ctx, p + kLenBytes, &out, p + kLenBytes, static_cast<int>(text)) != 1 ||
      EVP_EncryptFinal_ex(c.ctx, p + kLenBytes + out, &final_out) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_GET_TAG, kTagBytes, p + kLenBytes + text) != 1) {
    throw Napi::Error::New(env, "OpenSSL ChaCha20-Poly1305 seal failed");
  }
  return record;
}

Napi::Value OpenRecordJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* key = Key(info);
  uint8_t nonce[kNonceBytes];
  Nonce(info, nonce);
  Napi::Uint8Array ciphertext = Uint8ArrayArg(info, 2, "ciphertext");
  const size_t len = ciphertext.ByteLength();
  if (len < kTagBytes || len > kMaxCiphertext) throw Napi::RangeError::New(env, "ciphertext length out of range");
  const size_t text = len - kTagBytes;

  Napi::Buffer<uint8_t> plain = Napi::Buffer<uint8_t>::New(env, text);
  ThreadCipher& c = Cipher(env);
  int out = 0, final_out = 0;
  // The tag is copied first: set_tag wants a writable buffer.
  uint8_t tag[kTagBytes];
  std::memcpy(tag, ciphertext.Data() + text, kTagBytes);
  if (EVP_CipherInit_ex(c.ctx, c.cipher, nullptr, key, nonce, 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) != 1 ||
      EVP_DecryptUpdate(c.ctx, plain.Data(), &out, ciphertext.Data(), static_cast<int>(text)) != 1) {
    throw Napi::Error::New(env, "OpenSSL ChaCha20-Poly1305 open failed");
  }
  if (EVP_DecryptFinal_ex(c.ctx, plain.Data() + out, &final_out) != 1) {
    // Nothing unauthenticated may leave: wipe what was decrypted.
    std::memset(plain.Data(), 0, text);
    return env.Null();
  }
  return plain;
}

}  // namespace jumper
