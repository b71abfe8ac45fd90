// netns_socket.cc — the syscall sequences that create sockets inside another
// network namespace.
//
// Why this works: setns(2) with CLONE_NEWNET changes the network namespace
// of the calling *thread* only, and a socket's namespace is fixed at
// socket(2) time (it keeps it when the thread moves on or exits). So a
// throwaway thread enters the namespace, creates the socket, and dies; the
// fd is valid process-wide and behaves as if created in that namespace.
//
// Man pages relied on: open(2), setns(2), socket(2), setsockopt(2),
// bind(2), listen(2), connect(2), poll(2), getsockopt(2) (SO_ERROR),
// unshare(2) (CLONE_FS), umask(2).
#include "netns_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "fd_guard.h"

namespace jumper {

namespace {

constexpr int kSocketFlags = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;

// open + setns for the calling thread. The namespace fd is closed right
// away: the thread's membership does not depend on it.
SocketResult EnterNetns(const std::string& ns_path) {
  FdGuard ns_fd(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns_fd.valid()) return SocketResult::Fail(errno, "open");
  // CLONE_NEWNET makes the kernel reject (EINVAL) an fd of another ns type.
  if (::setns(ns_fd.get(), CLONE_NEWNET) != 0) return SocketResult::Fail(errno, "setns");
  return SocketResult::Ok(-1);
}

bool IsTcp(const SocketAddress& address) { return address.family != Family::kUnix; }

// Remaining milliseconds until `deadline`, clamped at 0.
int MillisecondsLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Wait for a nonblocking connect to finish; returns 0 or an errno value.
int AwaitConnect(int fd, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pollfd entry{fd, POLLOUT, 0};
    const int ready = ::poll(&entry, 1, MillisecondsLeft(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;  // recompute the remaining time
      return errno;
    }
    if (ready == 0) return ETIMEDOUT;
    int so_error = 0;
    socklen_t length = sizeof(so_error);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0) return errno;
    return so_error;
  }
}

// The part both calls share: enter the namespace on this thread, resolve an
// IPv6 scope name there, and create the socket (which now belongs to it).
SocketResult OpenSocketInNetns(const std::string& ns_path, SocketAddress* address) {
  SocketResult entered = EnterNetns(ns_path);
  if (entered.error != 0) return entered;
  if (const int error = ResolveScope(address); error != 0) {
    return SocketResult::Fail(error, "if_nametoindex");
  }
  const int fd = ::socket(SocketDomain(address->family), kSocketFlags, 0);
  if (fd < 0) return SocketResult::Fail(errno, "socket");
  return SocketResult::Ok(fd);
}

}  // namespace

SocketResult ListenInNetns(ListenRequest request) {
  SocketResult opened = OpenSocketInNetns(request.ns_path, &request.address);
  if (opened.error != 0) return opened;
  FdGuard fd(opened.fd);

  if (IsTcp(request.address)) {
    // Allow an immediate re-listen on a port with connections in TIME_WAIT.
    const int on = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) {
      return SocketResult::Fail(errno, "setsockopt");
    }
  }
  if (request.umask >= 0) {
    // umask(2) is per filesystem context, shared by all threads: a private
    // one for this throwaway thread leaves the JS thread's umask alone
    // (children it spawns meanwhile keep the operator's).
    if (::unshare(CLONE_FS) != 0) return SocketResult::Fail(errno, "unshare");
    ::umask(static_cast<mode_t>(request.umask));
  }
  const auto* address = reinterpret_cast<const sockaddr*>(&request.address.storage);
  if (::bind(fd.get(), address, request.address.length) != 0) {
    return SocketResult::Fail(errno, "bind");
  }
  if (::listen(fd.get(), request.backlog) != 0) return SocketResult::Fail(errno, "listen");
  return SocketResult::Ok(fd.release());
}

SocketResult ConnectInNetns(ConnectRequest request) {
  SocketResult opened = OpenSocketInNetns(request.ns_path, &request.address);
  if (opened.error != 0) return opened;
  FdGuard fd(opened.fd);

  const auto* address = reinterpret_cast<const sockaddr*>(&request.address.storage);
  if (::connect(fd.get(), address, request.address.length) == 0) {
    return SocketResult::Ok(fd.release());  // loopback and Unix often finish at once
  }
  // EINTR: the connection attempt continues asynchronously (connect(2)),
  // so it is awaited exactly like EINPROGRESS. For Unix sockets EAGAIN
  // means "backlog full", a real failure, and falls through.
  if (errno != EINPROGRESS && errno != EINTR) return SocketResult::Fail(errno, "connect");

  if (const int error = AwaitConnect(fd.get(), request.timeout_ms); error != 0) {
    return SocketResult::Fail(error, "connect");
  }
  return SocketResult::Ok(fd.release());
}

}  // namespace jumper
