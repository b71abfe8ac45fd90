// unix_datagram.cc — see unix_datagram.h. Man pages relied on: unix(7)
// (sockaddr_un, abstract names), socket(2), sendto(2).
#include "unix_datagram.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "errno_error.h"
#include "fd_guard.h"

namespace jumper {

Napi::Value SendUnixDatagramJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    throw Napi::TypeError::New(env, "sendUnixDatagram expects (path: string, bytes: Buffer)");
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const Napi::Buffer<uint8_t> bytes = info[1].As<Napi::Buffer<uint8_t>>();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract names are not NUL-terminated: their length is the address length.
  if (path.size() < 2 || path.size() > sizeof addr.sun_path - (path[0] == '@' ? 0 : 1) ||
      (path[0] != '/' && path[0] != '@') || path.find('\0') != std::string::npos) {
    throw Napi::RangeError::New(env, "path must be an absolute socket path or @abstract name that fits sun_path");
  }
  memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  FdGuard fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw MakeErrnoError(env, errno, "socket", path);
  ssize_t n;
  do {
    n = ::sendto(fd.get(), bytes.Data(), bytes.Length(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw MakeErrnoError(env, errno, "sendto", path);
  return env.Undefined();
}

}  // namespace jumper
