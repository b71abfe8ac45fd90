// fd_flags.cc — see fd_flags.h. Man pages relied on: fcntl(2).
#include "fd_flags.h"

#include <errno.h>
#include <fcntl.h>

#include <cmath>

#include "errno_error.h"

namespace jumper {

Napi::Value SetNonBlockingJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
    throw Napi::TypeError::New(env, "setNonBlocking(fd: number, on: boolean)");
  }
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 0x7fffffff) {
    throw Napi::RangeError::New(env, "fd must be a non-negative integer");
  }
  const int fd = static_cast<int>(d);
  const bool on = info[1].As<Napi::Boolean>().Value();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw MakeErrnoError(env, errno, "fcntl", "F_GETFL");
  const int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) != 0) throw MakeErrnoError(env, errno, "fcntl", "F_SETFL");
  return env.Undefined();
}

}  // namespace jumper
