// typed_args.h — positional argument checks shared by the crypto bindings
// (noise_crypto.cc, record_aead.cc): TypeError/RangeError, thrown before
// any work is done.
#pragma once

#include <napi.h>

#include <cstddef>

namespace jumper {

// info[index] as a Uint8Array (a Buffer is one); TypeError otherwise.
Napi::Uint8Array Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// The same, exactly `length` bytes long; RangeError otherwise.
Napi::Uint8Array FixedUint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length);

}  // namespace jumper
