// reactor.h — the shared event loop under the native data paths.
//
// A few process-wide native threads (kMaxReactors at most, one per core),
// each running epoll(7) edge-triggered over the non-blocking sockets of
// every stream assigned to it. A Stream is one connection's data path (the
// record pump, the splice forwarder); it owns its two socket fds from the
// moment StartStream returns until its Teardown closes them, and reports
// once, on the JS thread, through one thread-safe function per JS
// environment:
//   onDone({ reason, detail?, side?, bytesUp, bytesDown })
//
// Threads: a stream is started and driven one step on the JS thread (so
// the first bytes move without waiting for a thread wake-up), registered
// with its reactor's epoll set there too, and from then on runs only on its
// reactor thread. The JS thread talks to a reactor through a locked command
// queue (start, cancel, cancel-all-of-an-environment at teardown) plus an
// eventfd wake-up; a start needs no wake-up of its own: the stream's first
// event brings the reactor, which takes queued commands before any event.
//
// Interest: a socket is watched for input from the start, for output only
// once a write could not finish (WantWritable): a connected socket is
// writable at once, and an EPOLLOUT interest from the start would wake the
// reactor for every new stream with nothing to do.
//
// Man pages relied on: epoll(7), epoll_ctl(2), epoll_wait(2), eventfd(2),
// pthread_create(3), pthread_sigmask(3).
#pragma once

#include <napi.h>
#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jumper {

// 'ECONNRESET' etc.; 'E<n>' when glibc has no name.
std::string ErrnoName(int error);

struct StreamResult {
  std::string reason = "done";
  std::string detail;
  std::string side;  // 'plain' | 'wire' | 'local' ('' when done)
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
  // A socket Teardown left open for JS to close (lingerFd): after an ABORT,
  // the peer's last bytes are read and dropped until its FIN, so the close
  // does not reset the connection before the ABORT got there. -1: none.
  int linger_fd = -1;
  // Bytes of the last record and the ABORT the kernel did not take yet
  // (lingerPending): JS writes them, then the FIN, on linger_fd.
  std::vector<uint8_t> linger_pending;
};

struct StreamLink;  // reactor bookkeeping (reactor.cc)
namespace reactor_detail {
class Reactor;
}  // namespace reactor_detail

// One connection's data path. Every virtual is called on its reactor thread,
// but for Start and the first Drive (see StartStream).
class Stream {
 public:
  static constexpr int kSlots = 2;
  // Steps per reactor turn before the other streams get theirs (about
  // 1 MiB per direction for the record pump).
  static constexpr int kStepsPerTurn = 16;
  // Edge-triggered input, hang-ups; EPOLLOUT is added by WantWritable.
  static constexpr uint32_t kInterestIn = EPOLLIN | EPOLLRDHUP | EPOLLET;

  Stream(int fd0, int fd1) : fds_{fd0, fd1} {}
  virtual ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Once, on the JS thread inside StartStream, before the fds are
  // registered (epoll reports on registration whatever is ready by then).
  virtual void Start() = 0;
  // epoll reported `events` for fds_[slot]: note the readiness.
  virtual void OnEvents(int slot, uint32_t events) = 0;
  // Move what can be moved, in at most `max_steps` steps (each at most one
  // read per direction). True: stopped with work left (the reactor gives it
  // another turn after the other ready streams). The first call is on the
  // JS thread (StartStream, one step), every later one on the reactor's.
  virtual bool Drive(int max_steps) = 0;
  // Stop promptly with reason 'cancelled' (no-op once finished).
  virtual void Cancel(const std::string& reason) = 0;
  // After finished(): the fds are out of epoll; send last words, close them.
  virtual void Teardown() = 0;

  int fd(int slot) const { return fds_[slot]; }
  uint32_t interest(int slot) const { return interest_[slot]; }
  bool finished() const { return finished_; }
  const StreamResult& result() const { return result_; }

 protected:
  // The first failure wins; returns false so callers can `return Fail(...)`.
  bool Fail(const char* reason, std::string detail, const char* side);
  // Both directions ended cleanly.
  void Done() { finished_ = true; }
  // A write to fds_[slot] stopped short: report EPOLLOUT for it from now on.
  // Returns false (after Fail) if epoll refused.
  bool WantWritable(int slot);

  int fds_[kSlots];
  bool failed_ = false;
  StreamResult result_;

 private:
  friend class reactor_detail::Reactor;
  friend Napi::Value StartStream(Napi::Env, std::unique_ptr<Stream>, Napi::Function);
  bool finished_ = false;
  bool primed_more_ = false;  // the priming Drive left work for the reactor
  bool registered_ = false;   // the fds are in the reactor's epoll set
  uint32_t interest_[kSlots] = {kInterestIn, kInterestIn};
  StreamLink* link_ = nullptr;  // owned; created by StartStream
};

// Hand `stream` to the least loaded reactor thread; `on_done(result)` runs
// once on the JS thread. Returns the handle CancelStreamJs takes. Throws
// (leaving the stream's fds open, i.e. the caller's) if no reactor thread
// can be started.
Napi::Value StartStream(Napi::Env env, std::unique_ptr<Stream> stream, Napi::Function on_done);

// cancel(handle, reason): idempotent; a finished stream ignores it.
Napi::Value CancelStreamJs(const Napi::CallbackInfo& info);

}  // namespace jumper
