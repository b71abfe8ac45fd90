// fd_flags.cc — see fd_flags.h. Man pages relied on: fcntl(2), socket(7) (SO_LINGER).
#include "fd_flags.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include "errno_error.h"
#include "typed_args.h"

namespace jumper {

bool SetFdNonBlocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  const int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return wanted == flags || ::fcntl(fd, F_SETFL, wanted) == 0;
}

void ArmResetOnClose(int fd) {
  const linger reset = {1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
}

Napi::Value SetNonBlockingJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "setNonBlocking(fd, on): on must be a boolean");
  if (!SetFdNonBlocking(fd, info[1].As<Napi::Boolean>().Value())) throw MakeErrnoError(env, errno, "fcntl", "O_NONBLOCK");
  return env.Undefined();
}

}  // namespace jumper
