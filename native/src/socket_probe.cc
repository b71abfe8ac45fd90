// socket_probe.cc — see socket_probe.h. Man pages relied on: recv(2).
#include "socket_probe.h"

#include <errno.h>
#include <sys/socket.h>

#include <cmath>

#include "reactor.h"  // ErrnoName

namespace jumper {

Napi::Value PeekSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 0x7fffffff) {
    throw Napi::RangeError::New(env, "fd must be a non-negative integer");
  }
  char byte;
  ssize_t n;
  do {
    n = ::recv(static_cast<int>(d), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return Napi::String::New(env, "data");
  if (n == 0) return Napi::String::New(env, "eof");
  if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::String::New(env, "open");
  return Napi::String::New(env, ErrnoName(errno));
}

}  // namespace jumper
