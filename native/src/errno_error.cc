// errno_error.cc — build a JS Error describing a failed system call.
//
// Man pages relied on: errno(3), strerror(3) (strerrorname_np and
// strerrordesc_np are GNU extensions, glibc 2.32+; both return static
// strings, so they are safe from any thread).
#include "errno_error.h"

#include <cstring>

namespace jumper {

namespace {

std::string ErrnoName(int error) {
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? std::string(name) : "E" + std::to_string(error);
}

std::string ErrnoDescription(int error) {
  const char* text = ::strerrordesc_np(error);
  return text != nullptr ? std::string(text) : "Unknown error " + std::to_string(error);
}

}  // namespace

Napi::Error MakeErrnoError(Napi::Env env, int error, const char* syscall,
                           const std::string& context) {
  const std::string code = ErrnoName(error);
  const std::string call = syscall != nullptr ? syscall : "unknown";
  std::string message = call + " " + code + ": " + ErrnoDescription(error);
  if (!context.empty()) message += " (" + context + ")";

  Napi::Error js_error = Napi::Error::New(env, message);
  js_error.Set("errno", Napi::Number::New(env, -error));
  js_error.Set("code", Napi::String::New(env, code));
  js_error.Set("syscall", Napi::String::New(env, call));
  return js_error;
}

}  // namespace jumper
