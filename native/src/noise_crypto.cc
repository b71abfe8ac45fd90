// noise_crypto.cc — see noise_crypto.h. Argument checks throw TypeError /
// RangeError; an OpenSSL failure throws an Error naming the failing call.
#include "noise_crypto.h"

#include "key_pair_batch.h"
#include "typed_args.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>

namespace jumper {
namespace {

constexpr size_t kDhLen = 32;
constexpr size_t kHashLen = 64;
constexpr size_t kBlockLen = 128;  // BLAKE2b's block: HMAC pads keys to it

// Per-thread OpenSSL state, made once: fetching an algorithm or building a
// key-generation context costs more than the operation itself. Worker
// threads each get their own (OpenSSL contexts are not shared across threads).
struct ThreadState {
  EVP_MD* blake2b = nullptr;
  EVP_MD_CTX* md_ctx = nullptr;
  EVP_PKEY_CTX* keygen = nullptr;

  ThreadState() {
    blake2b = EVP_MD_fetch(nullptr, "BLAKE2B-512", nullptr);
    md_ctx = EVP_MD_CTX_new();
    keygen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr);
    if (keygen != nullptr && EVP_PKEY_keygen_init(keygen) != 1) {
      EVP_PKEY_CTX_free(keygen);
      keygen = nullptr;
    }
  }
  ~ThreadState() {
    EVP_PKEY_CTX_free(keygen);
    EVP_MD_CTX_free(md_ctx);
    EVP_MD_free(blake2b);
  }
  ThreadState(const ThreadState&) = delete;
  ThreadState& operator=(const ThreadState&) = delete;
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

[[noreturn]] void ThrowOpenSsl(Napi::Env env, const char* call) {
  Napi::Error err = Napi::Error::New(env, std::string("OpenSSL ") + call + " failed");
  err.Set("code", Napi::String::New(env, "EOPENSSL"));
  throw err;
}

void FreeKey(Napi::Env /*env*/, EVP_PKEY* key) { EVP_PKEY_free(key); }

// Tags the Externals holding our keys, so that no other External (a pump
// handle, say) is ever taken for an EVP_PKEY.
constexpr napi_type_tag kKeyTag = {0x6a756d7065727832ULL, 0x353531396b657931ULL};

Napi::External<EVP_PKEY> WrapKey(Napi::Env env, EVP_PKEY* key) {
  Napi::External<EVP_PKEY> wrapped = Napi::External<EVP_PKEY>::New(env, key, FreeKey);
  wrapped.TypeTag(&kKeyTag);
  return wrapped;
}

// BLAKE2b-512 over up to three parts, into out[kHashLen].
bool Digest(Napi::Env env, const uint8_t* a, size_t a_len, const uint8_t* b, size_t b_len, const uint8_t* c, size_t c_len,
            uint8_t* out) {
  ThreadState& s = State();
  if (s.blake2b == nullptr || s.md_ctx == nullptr) ThrowOpenSsl(env, "EVP_MD_fetch(BLAKE2B-512)");
  unsigned int len = 0;
  return EVP_DigestInit_ex(s.md_ctx, s.blake2b, nullptr) == 1 && EVP_DigestUpdate(s.md_ctx, a, a_len) == 1 &&
         (b_len == 0 || EVP_DigestUpdate(s.md_ctx, b, b_len) == 1) &&
         (c_len == 0 || EVP_DigestUpdate(s.md_ctx, c, c_len) == 1) && EVP_DigestFinal_ex(s.md_ctx, out, &len) == 1 &&
         len == kHashLen;
}

// HMAC-BLAKE2b (RFC 2104) of (m1 || m2) under a key of at most one block;
// written out rather than through EVP_MAC so no MAC object is built per call.
void Hmac(Napi::Env env, const uint8_t* key, size_t key_len, const uint8_t* m1, size_t m1_len, const uint8_t* m2,
          size_t m2_len, uint8_t* out) {
  uint8_t pad[kBlockLen];
  uint8_t inner[kHashLen];
  std::memset(pad, 0, sizeof pad);
  std::memcpy(pad, key, key_len);
  for (uint8_t& byte : pad) byte ^= 0x36;
  bool ok = Digest(env, pad, sizeof pad, m1, m1_len, m2, m2_len, inner);
  for (uint8_t& byte : pad) byte ^= 0x36 ^ 0x5c;
  ok = ok && Digest(env, pad, sizeof pad, inner, sizeof inner, nullptr, 0, out);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(inner, sizeof inner);
  if (!ok) ThrowOpenSsl(env, "EVP_Digest(BLAKE2B-512)");
}

// The batch worker's calls (key_pair_batch.h).
EVP_PKEY* MakeKey(uint8_t pub[kX25519Len]) {
  EVP_PKEY_CTX* keygen = State().keygen;
  EVP_PKEY* key = nullptr;
  size_t len = kDhLen;
  if (keygen == nullptr || EVP_PKEY_keygen(keygen, &key) != 1 || EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 ||
      len != kDhLen) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return key;
}

Napi::Object WrapPair(Napi::Env env, EVP_PKEY* key, const uint8_t* pub) {
  Napi::Object pair = Napi::Object::New(env);
  pair.Set("privateKey", WrapKey(env, key));
  pair.Set("publicKey", Napi::Buffer<uint8_t>::Copy(env, pub, kDhLen));
  return pair;
}

const KeyPairMaker<EVP_PKEY> kOpenSslMaker = {MakeKey, EVP_PKEY_free, WrapPair, "OpenSSL EVP_PKEY_keygen(X25519) failed"};

}  // namespace

Napi::Value X25519KeyPairBatchJs(const Napi::CallbackInfo& info) {
  return QueueKeyPairBatch(info, "jumper:x25519KeyPairBatch", kOpenSslMaker);
}

Napi::Value X25519KeyPairJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EVP_PKEY* key = nullptr;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    Napi::Uint8Array priv = FixedUint8ArrayArg(info, 0, "privateKey", kDhLen);
    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.Data(), kDhLen);
    if (key == nullptr) ThrowOpenSsl(env, "EVP_PKEY_new_raw_private_key");
  } else {
    EVP_PKEY_CTX* keygen = State().keygen;
    if (keygen == nullptr || EVP_PKEY_keygen(keygen, &key) != 1) ThrowOpenSsl(env, "EVP_PKEY_keygen(X25519)");
  }
  Napi::Buffer<uint8_t> pub = Napi::Buffer<uint8_t>::New(env, kDhLen);
  size_t pub_len = kDhLen;
  if (EVP_PKEY_get_raw_public_key(key, pub.Data(), &pub_len) != 1 || pub_len != kDhLen) {
    EVP_PKEY_free(key);
    ThrowOpenSsl(env, "EVP_PKEY_get_raw_public_key");
  }
  Napi::Object pair = Napi::Object::New(env);
  pair.Set("privateKey", WrapKey(env, key));
  pair.Set("publicKey", pub);
  return pair;
}

Napi::Value X25519AgreeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal() || !info[0].As<Napi::External<EVP_PKEY>>().CheckTypeTag(&kKeyTag)) {
    throw Napi::TypeError::New(env, "privateKey must be a key from x25519KeyPair");
  }
  EVP_PKEY* key = info[0].As<Napi::External<EVP_PKEY>>().Data();
  Napi::Uint8Array pub = FixedUint8ArrayArg(info, 1, "publicKey", kDhLen);

  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, pub.Data(), kDhLen);
  EVP_PKEY_CTX* ctx = peer != nullptr ? EVP_PKEY_CTX_new(key, nullptr) : nullptr;
  Napi::Buffer<uint8_t> shared = Napi::Buffer<uint8_t>::New(env, kDhLen);
  size_t shared_len = kDhLen;
  // OpenSSL's X25519 refuses an all-zero result (RFC 7748 §6.1), which is
  // what a low-order peer key gives: reported as a bad key, not a failure.
  const bool ok = ctx != nullptr && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
                  EVP_PKEY_derive(ctx, shared.Data(), &shared_len) == 1 && shared_len == kDhLen;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  if (!ok) {
    OPENSSL_cleanse(shared.Data(), kDhLen);
    Napi::Error err = Napi::Error::New(env, "X25519 agreement failed (low-order or invalid public key)");
    err.Set("code", Napi::String::New(env, "EBADKEY"));
    throw err;
  }
  return shared;
}

Napi::Value NoiseHkdfJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array ck = Uint8ArrayArg(info, 0, "chainingKey");
  Napi::Uint8Array ikm = Uint8ArrayArg(info, 1, "ikm");
  if (ck.ByteLength() > kBlockLen) throw Napi::RangeError::New(env, "chainingKey must be at most 128 bytes");
  if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "outputs must be 2 or 3");
  const int outputs = info[2].As<Napi::Number>().Int32Value();
  if (outputs != 2 && outputs != 3) throw Napi::RangeError::New(env, "outputs must be 2 or 3");

  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kHashLen * static_cast<size_t>(outputs));
  uint8_t temp_key[kHashLen];
  uint8_t* o = out.Data();
  const uint8_t one = 1, two = 2, three = 3;
  Hmac(env, ck.Data(), ck.ByteLength(), ikm.Data(), ikm.ByteLength(), nullptr, 0, temp_key);
  Hmac(env, temp_key, kHashLen, &one, 1, nullptr, 0, o);
  Hmac(env, temp_key, kHashLen, o, kHashLen, &two, 1, o + kHashLen);
  if (outputs == 3) Hmac(env, temp_key, kHashLen, o + kHashLen, kHashLen, &three, 1, o + 2 * kHashLen);
  OPENSSL_cleanse(temp_key, sizeof temp_key);
  return out;
}

Napi::Value Blake2bJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array a = Uint8ArrayArg(info, 0, "a");
  Napi::Uint8Array b = Uint8ArrayArg(info, 1, "b");
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kHashLen);
  if (!Digest(env, a.Data(), a.ByteLength(), b.Data(), b.ByteLength(), nullptr, 0, out.Data())) {
    ThrowOpenSsl(env, "EVP_Digest(BLAKE2B-512)");
  }
  return out;
}

}  // namespace jumper
