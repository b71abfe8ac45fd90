// key_pair_batch.h — X25519 key pairs made on a libuv pool thread, handed to
// JS as one Promise<Array<{ privateKey, publicKey }>>: shared by the OpenSSL
// (noise_crypto.cc) and libsodium (x25519_sodium.cc) implementations, which
// differ only in how a key is made, freed and wrapped.
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

namespace jumper {

constexpr size_t kX25519Len = 32;
constexpr uint32_t kMaxKeyPairBatch = 64;

// One implementation's key type and calls.
template <typename Key>
struct KeyPairMaker {
  // Off the JS thread: a fresh key and its public key; nullptr on failure.
  Key* (*make)(uint8_t pub[kX25519Len]);
  void (*free)(Key* key);
  // On the JS thread: { privateKey, publicKey }, taking ownership of `key`.
  Napi::Object (*wrap)(Napi::Env env, Key* key, const uint8_t* pub);
  const char* failure;  // the rejection's message when make fails
};

// Makes key pairs in Execute (thread pool, no JS), hands them over in OnOK.
template <typename Key>
class KeyPairBatch : public Napi::AsyncWorker {
 public:
  KeyPairBatch(Napi::Env env, const char* name, const KeyPairMaker<Key>& maker, uint32_t count)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), maker_(maker), count_(count) {}

  ~KeyPairBatch() override {
    for (Made& made : made_) maker_.free(made.key);  // only those not handed to JS
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    made_.reserve(count_);
    for (uint32_t i = 0; i < count_; i++) {
      Made made;
      made.key = maker_.make(made.pub);
      if (made.key == nullptr) {
        SetError(maker_.failure);
        return;
      }
      made_.push_back(made);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array pairs = Napi::Array::New(env, made_.size());
    for (size_t i = 0; i < made_.size(); i++) {
      Key* key = made_[i].key;
      made_[i].key = nullptr;  // owned by the wrapper now
      pairs.Set(static_cast<uint32_t>(i), maker_.wrap(env, key, made_[i].pub));
    }
    deferred_.Resolve(pairs);
  }

  void OnError(const Napi::Error& err) override { deferred_.Reject(err.Value()); }

 private:
  struct Made {
    Key* key = nullptr;
    uint8_t pub[kX25519Len];
  };
  Napi::Promise::Deferred deferred_;
  KeyPairMaker<Key> maker_;
  uint32_t count_;
  std::vector<Made> made_;
};

// keyPairBatch(count: 1..64) -> Promise: checks the argument, queues the worker.
template <typename Key>
Napi::Value QueueKeyPairBatch(const Napi::CallbackInfo& info, const char* name, const KeyPairMaker<Key>& maker) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "count must be a number");
  const double count = info[0].As<Napi::Number>().DoubleValue();
  if (!(count >= 1 && count <= kMaxKeyPairBatch) || static_cast<uint32_t>(count) != count) {
    throw Napi::RangeError::New(env, "count must be an integer in 1..64");
  }
  auto* worker = new KeyPairBatch<Key>(env, name, maker, static_cast<uint32_t>(count));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself after OnOK/OnError
  return promise;
}

}  // namespace jumper
