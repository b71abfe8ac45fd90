// socket_probe.cc — see socket_probe.h. Man pages relied on: recv(2).
#include "socket_probe.h"

#include <errno.h>
#include <sys/socket.h>

#include "reactor.h"  // ErrnoName
#include "typed_args.h"

namespace jumper {

Napi::Value PeekSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  char byte;
  ssize_t n;
  do {
    n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return Napi::String::New(env, "data");
  if (n == 0) return Napi::String::New(env, "eof");
  if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::String::New(env, "open");
  return Napi::String::New(env, ErrnoName(errno));
}

}  // namespace jumper
