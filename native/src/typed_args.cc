// typed_args.cc — see typed_args.h.
#include "typed_args.h"

#include <cmath>
#include <cstdint>
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

double WholeNumberValue(Napi::Env env, const Napi::Value& value, const std::string& name, double min, double max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, name + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < min || d > max) {
    // Bounds are integers within 2^53: print them without a fraction or exponent.
    throw Napi::RangeError::New(env, name + " must be an integer in [" + std::to_string(static_cast<int64_t>(min)) + ", " +
                                         std::to_string(static_cast<int64_t>(max)) + "]");
  }
  return d;
}

int FdValue(Napi::Env env, const Napi::Value& value, const std::string& name) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, name + " must be a file descriptor number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 0x7fffffff) {
    throw Napi::RangeError::New(env, name + " must be a file descriptor (integer >= 0)");
  }
  return static_cast<int>(d);
}

int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return FdValue(info.Env(), info.Length() > index ? info[index] : info.Env().Undefined(), name);
}

int IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int min, int max) {
  const Napi::Value value = info.Length() > index ? info[index] : info.Env().Undefined();
  return static_cast<int>(WholeNumberValue(info.Env(), value, name, min, max));
}

}  // namespace jumper
