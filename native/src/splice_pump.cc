// splice_pump.cc — native plain forwarder (see splice_pump.h).
//
// Per direction: src socket -> pipe -> dst socket with splice(2). Each step
// first passes on what the pipe holds, then refills it from the socket while
// it has room (and passes that on at once), so the source is read while the
// destination drains (as systemd-socket-proxyd does). Edge-triggered
// readiness: EAGAIN from the refill is "the socket has nothing" only when
// the pipe was empty (a pipe with bytes may be full: partly filled pages
// take whole slots), so readability is cleared only then and the refill is
// retried after the pipe drained. Bytes JS had already read (a paused
// socket normally has none) are sent first with send(2).
//
// Memory: a direction holds a pipe only while bytes sit in it; idle
// connections hold none. Pipes go back to a small process-wide pool
// (kPipePoolMax), so a busy stream does not create and close a pipe per
// burst. The bytes in a pipe are page references (kernel memory, not this
// process's RSS); at most one pipe's capacity per direction.
//
// Man pages relied on: splice(2), pipe2(2), fcntl(2) (F_SETPIPE_SZ,
// F_GETPIPE_SZ), send(2), shutdown(2), socket(7) (SO_LINGER), epoll(7).
#include "splice_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fd_flags.h"
#include "reactor.h"
#include "stream_args.h"

namespace jumper {

namespace {

// Pipe capacity asked for, as systemd-socket-proxyd does. A pipe's whole
// capacity counts against its user's pipe-user-pages-soft (64 MiB by
// default; root is exempt, a dropped-privilege jumper is not) whether or
// not it holds bytes, and past it the kernel hands out 8 KiB pipes. 1 MiB
// pipes move one stream about 9 % faster, so the process's first
// kBigPipesMax pipes ask for that (8 MiB in all) and the rest for 256 KiB
// (about 220 more within the default limit). The kernel may refuse a size
// (a lowered pipe-max-size); then 64 KiB stays.
constexpr int kBigPipeBytes = 1024 * 1024;
constexpr int kPipeBytes = 256 * 1024;
constexpr int kBigPipesMax = 8;
constexpr size_t kPipePoolMax = 16;
constexpr int kLocal = 0;
constexpr int kRemote = 1;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

// Open pipes of kBigPipeBytes in this process (pooled ones included).
std::atomic<int> big_pipes{0};

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  size_t capacity = 0;
  bool big = false;  // counted in big_pipes

  bool valid() const { return read_fd >= 0; }
  void Close() {
    if (read_fd >= 0) ::close(read_fd);
    if (write_fd >= 0) ::close(write_fd);
    read_fd = write_fd = -1;
    if (big) big_pipes.fetch_sub(1, std::memory_order_relaxed);
    big = false;
  }
};

// Empty pipes for reuse, process-wide; never destroyed (see reactor.cc).
class PipePool {
 public:
  // 0 or an errno.
  int Take(Pipe* out) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        *out = free_.back();
        free_.pop_back();
        return 0;
      }
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
    out->read_fd = fds[0];
    out->write_fd = fds[1];
    out->big = false;
    if (big_pipes.fetch_add(1, std::memory_order_relaxed) < kBigPipesMax &&
        ::fcntl(fds[1], F_SETPIPE_SZ, kBigPipeBytes) >= 0) {
      out->big = true;
    } else {
      big_pipes.fetch_sub(1, std::memory_order_relaxed);
      ::fcntl(fds[1], F_SETPIPE_SZ, kPipeBytes);  // best effort
    }
    const int size = ::fcntl(fds[1], F_GETPIPE_SZ);
    out->capacity = size > 0 ? static_cast<size_t>(size) : 65536;
    return 0;
  }

  // Only empty pipes come back.
  void Give(Pipe* pipe) {
    if (!pipe->valid()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (free_.size() < kPipePoolMax) {
        free_.push_back(*pipe);
        *pipe = Pipe{};
        return;
      }
    }
    pipe->Close();
  }

 private:
  std::mutex mu_;
  std::vector<Pipe> free_;  // guarded by mu_
};

PipePool& Pipes() {
  static PipePool* pool = new PipePool();
  return *pool;
}

const char* SideOf(int slot) { return slot == kLocal ? "plain" : "wire"; }

class SplicePump final : public Stream {
 public:
  SplicePump(int local_fd, int remote_fd, std::vector<uint8_t> local_pending, std::vector<uint8_t> remote_pending)
      : Stream(local_fd, remote_fd) {
    up_.src = kLocal;
    up_.dst = kRemote;
    up_.pending = std::move(local_pending);
    up_.bytes = &result_.bytes_up;
    down_.src = kRemote;
    down_.dst = kLocal;
    down_.pending = std::move(remote_pending);
    down_.bytes = &result_.bytes_down;
  }

  ~SplicePump() override {
    up_.pipe.Close();
    down_.pipe.Close();
  }

  void Start() override {
    for (int slot = 0; slot < kSlots; slot++) {
      if (!SetFdNonBlocking(fds_[slot], true)) {
        FailErrno(errno, SideOf(slot));
        return;
      }
      // Try everything once: edge-triggered epoll only reports changes.
      readable_[slot] = writable_[slot] = true;
    }
  }

  void OnEvents(int slot, uint32_t events) override {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_[slot] = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_[slot] = true;
  }

  bool Drive(int max_steps) override {
    bool idle = false;
    for (int step = 0; step < max_steps && !idle; step++) {
      const int up = Step(up_);
      if (up < 0) return false;
      const int down = Step(down_);
      if (down < 0) return false;
      if (up_.done && down_.done) {
        Done();
        return false;
      }
      idle = up == 0 && down == 0;
    }
    // Out of steps: more only if a next step would move something (a new
    // stream's first step usually leaves nothing, and needs no reactor turn).
    if (!idle && (HasWork(up_) || HasWork(down_))) return true;
    // Idle until the next event: empty pipes go back to the pool.
    if (up_.in_pipe == 0) Pipes().Give(&up_.pipe);
    if (down_.in_pipe == 0) Pipes().Give(&down_.pipe);
    return false;
  }

  void Cancel(const std::string& reason) override { Fail("cancelled", reason, "local"); }

  void Teardown() override {
    if (failed_) {
      // Neither peer may mistake a failure for a clean EOF: reset both.
      ArmResetOnClose(fds_[kLocal]);
      ArmResetOnClose(fds_[kRemote]);
    }
    ::close(fds_[kLocal]);
    ::close(fds_[kRemote]);
    for (Dir* d : {&up_, &down_}) {
      if (d->in_pipe == 0) {
        Pipes().Give(&d->pipe);
      } else {
        d->pipe.Close();  // undelivered bytes: never reuse
      }
      std::vector<uint8_t>().swap(d->pending);
    }
  }

 private:
  struct Dir {
    int src = kLocal;
    int dst = kRemote;
    Pipe pipe;
    size_t in_pipe = 0;            // bytes spliced in, not yet out
    std::vector<uint8_t> pending;  // read by JS before the handover: sent first
    size_t pending_off = 0;
    bool src_eof = false;
    bool done = false;  // EOF passed on (dst half-closed)
    uint64_t* bytes = nullptr;
  };

  bool FailErrno(int error, const char* side) {
    const bool reset = error == ECONNRESET || error == EPIPE || error == ENOTCONN;
    return Fail(reset ? "peer_reset" : "io_error", ErrnoName(error), side);
  }

  // Whether Step(d) would make a call now (its conditions, in its order).
  bool HasWork(const Dir& d) const {
    if (d.done) return false;
    if (d.pending_off < d.pending.size()) return writable_[d.dst];
    if (d.in_pipe > 0 && writable_[d.dst]) return true;
    if (d.src_eof) return d.in_pipe == 0;
    return readable_[d.src] && (!d.pipe.valid() || d.in_pipe < d.pipe.capacity);
  }

  // Step()'s failure value: Fail* only records the result.
  static int StepFail(bool /*always false*/) { return -1; }

  // Bytes written to d.dst: note them, and a short write means it is full.
  // False if watching it for room failed.
  bool Wrote(Dir& d, ssize_t n, size_t wanted) {
    *d.bytes += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) == wanted) return true;
    writable_[d.dst] = false;
    return WantWritable(d.dst);
  }

  // One move in direction d: pass on what the pipe holds, then refill it.
  // 1: a call moved something; 0: nothing to do until an event; -1: failed.
  int Step(Dir& d) {
    if (d.done) return 0;
    const int dst = fds_[d.dst];
    if (d.pending_off < d.pending.size()) {
      if (!writable_[d.dst]) return 0;
      const size_t want = d.pending.size() - d.pending_off;
      const ssize_t n = ::send(dst, d.pending.data() + d.pending_off, want, MSG_NOSIGNAL);
      if (n < 0) return WriteError(d);
      d.pending_off += static_cast<size_t>(n);
      if (!Wrote(d, n, want)) return -1;
      if (d.pending_off == d.pending.size()) {
        std::vector<uint8_t>().swap(d.pending);
        d.pending_off = 0;
      }
      return 1;
    }
    const int moved = Drain(d);
    if (moved < 0) return -1;
    if (d.src_eof) {
      if (d.in_pipe > 0) return moved;
      if (::shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) return StepFail(FailErrno(errno, SideOf(d.dst)));
      d.done = true;
      return 1;
    }
    // The source is read while the pipe has room, so it refills while the
    // destination drains (the two sockets' buffers and the pipe overlap).
    if (!readable_[d.src]) return moved;
    if (!d.pipe.valid()) {
      const int error = Pipes().Take(&d.pipe);
      if (error != 0) return StepFail(FailErrno(error, "local"));
    }
    if (d.in_pipe >= d.pipe.capacity) return moved;
    const ssize_t n = ::splice(fds_[d.src], nullptr, d.pipe.write_fd, nullptr, d.pipe.capacity - d.in_pipe, kSpliceFlags);
    if (n > 0) {
      d.in_pipe += static_cast<size_t>(n);
      // Passed on at once: a new stream's first bytes leave in the step
      // StartStream runs on the JS thread, without a reactor turn.
      return Drain(d) < 0 ? -1 : 1;
    }
    if (n == 0) {
      d.src_eof = true;
      return 1;
    }
    if (errno == EINTR) return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // With an empty pipe EAGAIN is about the socket: wait for its edge.
      // With bytes in the pipe it may mean "pipe full" (partly filled pages
      // take whole slots): keep trying after the pipe drains.
      if (d.in_pipe == 0) readable_[d.src] = false;
      return moved;
    }
    return StepFail(FailErrno(errno, SideOf(d.src)));
  }

  // Pass on what the pipe holds. 1: moved (or EINTR); 0: the pipe is empty
  // or the destination full; -1: failed.
  int Drain(Dir& d) {
    if (d.in_pipe == 0 || !writable_[d.dst]) return 0;
    const ssize_t n = ::splice(d.pipe.read_fd, nullptr, fds_[d.dst], nullptr, d.in_pipe, kSpliceFlags);
    if (n < 0) return WriteError(d);
    if (n == 0) return StepFail(FailErrno(EIO, "local"));  // a pipe with bytes cannot be empty
    d.in_pipe -= static_cast<size_t>(n);
    return Wrote(d, n, d.in_pipe + static_cast<size_t>(n)) ? 1 : -1;
  }

  int WriteError(Dir& d) {
    if (errno == EINTR) return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_[d.dst] = false;
      return WantWritable(d.dst) ? 0 : -1;
    }
    return StepFail(FailErrno(errno, SideOf(d.dst)));
  }

  bool readable_[kSlots] = {false, false};
  bool writable_[kSlots] = {false, false};
  Dir up_;    // local -> remote
  Dir down_;  // remote -> local
};

}  // namespace

// startSplice({ localFd, remoteFd, localPending?, remotePending?, onDone })
// Throws without taking the fds; once it returns, the fds belong to the pump.
Napi::Value StartSpliceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) ThrowType(env, "startSplice expects one options object");
  const Napi::Object opts = info[0].As<Napi::Object>();
  const int local_fd = SocketFdField(env, opts, "localFd");
  const int remote_fd = SocketFdField(env, opts, "remoteFd");
  if (local_fd == remote_fd) ThrowType(env, "localFd and remoteFd must differ");
  std::vector<uint8_t> local_pending = BytesField(env, opts, "localPending");
  std::vector<uint8_t> remote_pending = BytesField(env, opts, "remotePending");
  const Napi::Value on_done = opts.Get("onDone");
  if (!on_done.IsFunction()) ThrowType(env, "onDone must be a function");
  return StartStream(env,
                     std::make_unique<SplicePump>(local_fd, remote_fd, std::move(local_pending),
                                                  std::move(remote_pending)),
                     on_done.As<Napi::Function>());
}

Napi::Value CancelSpliceJs(const Napi::CallbackInfo& info) { return CancelStreamJs(info); }

}  // namespace jumper
