// fd_passing.cc — sendFd/recvFd: SCM_RIGHTS over a Unix stream socket.
//
// The protocol is one message per hand-off: payload byte 0x01 (version 1)
// with exactly one descriptor attached. Both calls are non-blocking-safe:
// the sockets come from libuv and are O_NONBLOCK; a 1-byte send practically
// never blocks, and recvFd reports "not yet" as -1 for the caller to retry.
//
// Man pages relied on: unix(7), sendmsg(2), recvmsg(2), cmsg(3), fcntl(2).
#include "fd_passing.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errno_error.h"
#include "typed_args.h"

namespace jumper {
namespace {

constexpr unsigned char kHandoffVersion = 0x01;

}  // namespace

Napi::Value SendFdJs(const Napi::CallbackInfo& info) {
  const int via = FdArg(info, 0, "viaFd");
  const int fd = FdArg(info, 1, "fd");
  unsigned char payload = kHandoffVersion;
  iovec iov{&payload, sizeof payload};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t sent;
  do {
    sent = sendmsg(via, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != 1) throw MakeErrnoError(info.Env(), sent < 0 ? errno : EIO, "sendmsg", "hand-off");
  return info.Env().Undefined();
}

Napi::Value RecvFdJs(const Napi::CallbackInfo& info) {
  const int via = FdArg(info, 0, "viaFd");
  unsigned char payload[2] = {0, 0};
  iovec iov{payload, sizeof payload};
  // Room for more than one descriptor, so extra ones are received and closed.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = recvmsg(via, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(info.Env(), -1);
  if (got < 0) throw MakeErrnoError(info.Env(), errno, "recvmsg", "hand-off");

  int fds[4];
  int count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n && count < 4; i++) memcpy(&fds[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  const bool versioned = got == 1 && payload[0] == kHandoffVersion;
  const bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  // A well-formed message whose descriptor the kernel could not install here
  // arrives with MSG_CTRUNC and none: almost always RLIMIT_NOFILE (EMFILE);
  // a security module refusing the file looks the same.
  if (versioned && count == 0 && truncated) {
    throw MakeErrnoError(info.Env(), EMFILE, "recvmsg", "hand-off: the descriptor was dropped (fd limit, or refused by a security module)");
  }
  if (!versioned || count != 1 || truncated) {
    for (int i = 0; i < count; i++) close(fds[i]);
    throw MakeErrnoError(info.Env(), EPROTO, "recvmsg", "malformed hand-off");
  }
  return Napi::Number::New(info.Env(), fds[0]);
}

}  // namespace jumper
