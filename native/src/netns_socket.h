// netns_socket.h — the syscall sequences that create sockets inside another
// network namespace. Pure C++ (no Node-API) so they can be read and reasoned
// about on their own.
//
// These functions call setns(2) on the *calling thread*: they must only be
// run on a short-lived thread dedicated to one request (see
// dedicated_thread.h), never on the JS thread or the libuv pool.
//
// Man pages relied on: open(2), setns(2), socket(2), setsockopt(2),
// bind(2), listen(2), connect(2), poll(2), getsockopt(2) (SO_ERROR).
#pragma once

#include <string>

#include "socket_address.h"

namespace jumper {

// Outcome of one request: either fd >= 0, or error != 0 with the failing
// syscall's name (a string literal).
struct SocketResult {
  int fd = -1;
  int error = 0;
  const char* syscall = nullptr;

  static SocketResult Ok(int fd) { return SocketResult{fd, 0, nullptr}; }
  static SocketResult Fail(int error, const char* syscall) {
    return SocketResult{-1, error, syscall};
  }
};

struct ListenRequest {
  std::string ns_path;
  SocketAddress address;
  int backlog = 0;
  int umask = -1;  // >= 0: bind under this umask (this thread only)
};

struct ConnectRequest {
  std::string ns_path;
  SocketAddress address;
  int timeout_ms = 0;
};

// Enter the namespace, then socket + (SO_REUSEADDR for TCP) + bind + listen.
// With umask >= 0 the thread first unshares its filesystem attributes
// (CLONE_FS) and sets that umask, so a Unix socket file is created with
// tight permissions without changing the umask of the rest of the process.
// The returned fd is O_NONBLOCK | O_CLOEXEC.
SocketResult ListenInNetns(ListenRequest request);

// Enter the namespace, then socket + nonblocking connect, waiting at most
// timeout_ms for completion (ETIMEDOUT otherwise). The returned fd is
// connected, O_NONBLOCK | O_CLOEXEC.
SocketResult ConnectInNetns(ConnectRequest request);

}  // namespace jumper
