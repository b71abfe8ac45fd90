// typed_args.cc — see typed_args.h.
#include "typed_args.h"

#include <string>

namespace jumper {

Napi::Uint8Array Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array");
  }
  return info[index].As<Napi::Uint8Array>();
}

Napi::Uint8Array FixedUint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length) {
  Napi::Uint8Array bytes = Uint8ArrayArg(info, index, name);
  if (bytes.ByteLength() != length) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be " + std::to_string(length) + " bytes");
  }
  return bytes;
}

}  // namespace jumper
