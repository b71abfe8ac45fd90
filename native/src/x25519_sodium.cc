// x25519_sodium.cc — see x25519_sodium.h. Argument checks throw TypeError /
// RangeError, as in noise_crypto.cc.
#include "x25519_sodium.h"

#ifdef JUMPER_HAVE_LIBSODIUM

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "key_pair_batch.h"
#include "typed_args.h"

namespace jumper {
namespace {

constexpr size_t kDhLen = kX25519Len;

struct SodiumKey {
  uint8_t secret[kDhLen];
  ~SodiumKey() { sodium_memzero(secret, sizeof secret); }
};

// Not the tag of noise_crypto.cc's OpenSSL keys: neither takes the other's.
constexpr napi_type_tag kSodiumKeyTag = {0x6a756d7065727832ULL, 0x353531396e61636cULL};

void FreeKey(Napi::Env /*env*/, SodiumKey* key) { delete key; }

Napi::Object WrapPair(Napi::Env env, SodiumKey* key, const uint8_t* pub) {
  Napi::External<SodiumKey> wrapped = Napi::External<SodiumKey>::New(env, key, FreeKey);
  wrapped.TypeTag(&kSodiumKeyTag);
  Napi::Object pair = Napi::Object::New(env);
  pair.Set("privateKey", wrapped);
  pair.Set("publicKey", Napi::Buffer<uint8_t>::Copy(env, pub, kDhLen));
  return pair;
}

// A fresh key from libsodium's CSPRNG (also the batch worker's call,
// key_pair_batch.h); nullptr only if the base multiplication fails.
SodiumKey* MakeKey(uint8_t pub[kX25519Len]) {
  auto* key = new SodiumKey();
  randombytes_buf(key->secret, sizeof key->secret);
  if (crypto_scalarmult_base(pub, key->secret) == 0) return key;
  delete key;
  return nullptr;
}

void DeleteKey(SodiumKey* key) { delete key; }

const KeyPairMaker<SodiumKey> kSodiumMaker = {MakeKey, DeleteKey, WrapPair, "libsodium crypto_scalarmult_base failed"};

Napi::Value KeyPairJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t pub[kDhLen];
  std::unique_ptr<SodiumKey> key;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    Napi::Uint8Array priv = FixedUint8ArrayArg(info, 0, "privateKey", kDhLen);
    key = std::make_unique<SodiumKey>();
    std::memcpy(key->secret, priv.Data(), kDhLen);
    if (crypto_scalarmult_base(pub, key->secret) != 0) key.reset();
  } else {
    key.reset(MakeKey(pub));
  }
  if (!key) throw Napi::Error::New(env, "libsodium crypto_scalarmult_base failed");
  return WrapPair(env, key.release(), pub);
}

Napi::Value KeyPairBatchJs(const Napi::CallbackInfo& info) {
  return QueueKeyPairBatch(info, "jumper:sodiumX25519KeyPairBatch", kSodiumMaker);
}

Napi::Value AgreeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::External<SodiumKey>>().CheckTypeTag(&kSodiumKeyTag)) {
    throw Napi::TypeError::New(env, "privateKey must be a key from sodiumX25519KeyPair");
  }
  const SodiumKey* key = info[0].As<Napi::External<SodiumKey>>().Data();
  Napi::Uint8Array pub = FixedUint8ArrayArg(info, 1, "publicKey", kDhLen);
  Napi::Buffer<uint8_t> shared = Napi::Buffer<uint8_t>::New(env, kDhLen);
  // libsodium refuses an all-zero result (a low-order peer key) with -1.
  if (crypto_scalarmult(shared.Data(), key->secret, pub.Data()) != 0) {
    sodium_memzero(shared.Data(), kDhLen);
    Napi::Error err = Napi::Error::New(env, "X25519 agreement failed (low-order or invalid public key)");
    err.Set("code", Napi::String::New(env, "EBADKEY"));
    throw err;
  }
  return shared;
}

}  // namespace

void RegisterSodiumX25519(Napi::Env env, Napi::Object exports) {
  // sodium_init picks the fastest implementation for this CPU; -1 is failure.
  if (sodium_init() < 0) return;
  exports.Set("sodiumX25519KeyPair", Napi::Function::New(env, KeyPairJs, "sodiumX25519KeyPair"));
  exports.Set("sodiumX25519KeyPairBatch", Napi::Function::New(env, KeyPairBatchJs, "sodiumX25519KeyPairBatch"));
  exports.Set("sodiumX25519Agree", Napi::Function::New(env, AgreeJs, "sodiumX25519Agree"));
}

}  // namespace jumper

#else  // built without libsodium

namespace jumper {
void RegisterSodiumX25519(Napi::Env /*env*/, Napi::Object /*exports*/) {}
}  // namespace jumper

#endif
