// fd_guard.h — RAII owner for one file descriptor.
//
// Every syscall sequence in this addon opens descriptors that must be closed
// on every early return; FdGuard replaces goto-cleanup chains. release()
// hands ownership to the caller (the fd that is finally returned to JS).
//
// Man pages relied on: close(2) (close is never retried on EINTR on Linux:
// the descriptor is released even when close reports EINTR).
#pragma once

#include <unistd.h>

#include <cerrno>

namespace jumper {

class FdGuard {
 public:
  FdGuard() noexcept = default;
  explicit FdGuard(int fd) noexcept : fd_(fd) {}
  ~FdGuard() { reset(); }

  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  FdGuard(FdGuard&& other) noexcept : fd_(other.release()) {}
  FdGuard& operator=(FdGuard&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }

  // Give up ownership without closing.
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Close the owned fd (if any) and take `fd`. errno is preserved so a
  // cleanup on an error path never clobbers the errno being reported.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      const int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace jumper
