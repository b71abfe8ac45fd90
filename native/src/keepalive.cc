// keepalive.cc — see keepalive.h. Man pages relied on: tcp(7), socket(7),
// setsockopt(2).
#include "keepalive.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "errno_error.h"
#include "typed_args.h"

namespace jumper {
namespace {

void Set(Napi::Env env, int fd, int level, int option, int value, const char* what) {
  if (::setsockopt(fd, level, option, &value, sizeof value) != 0) throw MakeErrnoError(env, errno, "setsockopt", what);
}

int Get(Napi::Env env, int fd, int level, int option, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, option, &value, &len) != 0) throw MakeErrnoError(env, errno, "getsockopt", what);
  return value;
}

}  // namespace

Napi::Value SetKeepAliveJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0, "fd", 0, 0x7fffffff);
  // The kernel's own limits: MAX_TCP_KEEPIDLE/INTVL 32767 s, MAX_TCP_KEEPCNT 127.
  const int idle = IntArg(info, 1, "idleSeconds", 1, 32767);
  const int interval = IntArg(info, 2, "intervalSeconds", 1, 32767);
  const int count = IntArg(info, 3, "count", 1, 127);
  Set(env, fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
  Set(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, idle, "TCP_KEEPIDLE");
  Set(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, interval, "TCP_KEEPINTVL");
  Set(env, fd, IPPROTO_TCP, TCP_KEEPCNT, count, "TCP_KEEPCNT");
  return env.Undefined();
}

Napi::Value GetKeepAliveJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0, "fd", 0, 0x7fffffff);
  Napi::Object out = Napi::Object::New(env);
  out.Set("enabled", Napi::Boolean::New(env, Get(env, fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") != 0));
  out.Set("idleSeconds", Napi::Number::New(env, Get(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE")));
  out.Set("intervalSeconds", Napi::Number::New(env, Get(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL")));
  out.Set("count", Napi::Number::New(env, Get(env, fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT")));
  return out;
}

}  // namespace jumper
