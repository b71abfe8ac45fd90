// stream_args.cc — see stream_args.h.
#include "stream_args.h"

#include <errno.h>
#include <sys/stat.h>

#include "errno_error.h"
#include "typed_args.h"

namespace jumper {

void ThrowType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

int SocketFdField(Napi::Env env, const Napi::Object& opts, const char* name) {
  const int fd = FdValue(env, opts.Get(name), name);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw MakeErrnoError(env, errno, "fstat", name);
  if (!S_ISSOCK(st.st_mode)) ThrowType(env, std::string(name) + " must be a socket");
  return fd;
}

std::vector<uint8_t> BytesField(Napi::Env env, const Napi::Object& opts, const char* name) {
  const Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, std::string(name) + " must be a Buffer");
  }
  const auto bytes = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ElementLength());
}

}  // namespace jumper
