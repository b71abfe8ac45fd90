// reactor.cc — the shared event loop under the native data paths (see
// reactor.h).
//
// Memory: a reactor holds no per-stream buffers itself; per stream it keeps
// one StreamLink (a few pointers) and a slot in its stream list. epoll
// events carry the Stream pointer with the fd's slot in the low bit.
//
// Lifetime: a stream that finished is taken out of epoll, torn down and
// reported at once, but freed only after the current batch of events (a
// later event of the same batch may still name it).
//
// JS environments: each has one Host (thread-safe function, live count).
// Its cleanup hook is registered after the thread-safe function is created,
// so it runs first (hooks run in reverse order): it cancels the
// environment's streams, waits for them (bounded), then closes the Host so
// no reactor touches the thread-safe function again.
//
// Man pages relied on: epoll(7), epoll_ctl(2), epoll_wait(2), eventfd(2),
// pthread_create(3), pthread_setname_np(3), pthread_sigmask(3), sysconf(3).
#include "reactor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "busy_poll.h"
#include "errno_error.h"
#include "fd_flags.h"
#include "fd_guard.h"

namespace jumper {

std::string ErrnoName(int error) {
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? std::string(name) : "E" + std::to_string(error);
}

bool Stream::Fail(const char* reason, std::string detail, const char* side) {
  if (!finished_) {
    finished_ = true;
    failed_ = true;
    result_.reason = reason;
    result_.detail = std::move(detail);
    result_.side = side;
  }
  return false;
}

// A linger fd JS never got: with bytes still to send (the ABORT), a reset,
// not a FIN after part of a record (which the peer reads as truncation).
static void CloseUndeliveredLinger(const StreamResult& r) {
  if (r.linger_fd < 0) return;
  if (!r.linger_pending.empty()) ArmResetOnClose(r.linger_fd);
  ::close(r.linger_fd);
}

namespace reactor_detail {

// At most this many reactor threads (and never more than cores).
constexpr unsigned kMaxReactors = 2;
constexpr int kMaxEvents = 256;
// Virtual size; only the touched pages count (a shallow call chain).
constexpr size_t kThreadStack = 256 * 1024;
constexpr auto kTeardownWait = std::chrono::seconds(5);
constexpr uint64_t kSlotMask = 1;

class Reactor;
struct Host;

// What the JS handle points at. `stream` is touched on the reactor thread only.
struct StreamControl {
  Reactor* reactor = nullptr;
  Stream* stream = nullptr;
};

struct Completion {
  StreamResult result;
  Napi::FunctionReference* on_done;
};

void CallJs(Napi::Env env, Napi::Function /*unused*/, Host* host, Completion* raw);
using ReportFunction = Napi::TypedThreadSafeFunction<Host, Completion, CallJs>;

// One per JS environment (main thread, each worker).
struct Host {
  std::mutex mu;
  std::condition_variable cv;
  size_t live = 0;      // guarded by mu: started, not yet reported
  bool closed = false;  // guarded by mu: the environment is going away
  ReportFunction report;
  // JS thread only: reports not yet delivered; the loop is kept alive
  // (report referenced) while there are any, as a pending I/O would.
  size_t js_pending = 0;
};

}  // namespace reactor_detail

struct StreamLink {
  reactor_detail::Reactor* reactor = nullptr;
  std::shared_ptr<reactor_detail::Host> host;
  std::shared_ptr<reactor_detail::StreamControl> control;
  Napi::FunctionReference* on_done = nullptr;  // JS thread only (created, called, deleted there)
  size_t index = 0;                            // in Reactor::streams_
  bool queued = false;                         // in Reactor::ready_
};

Stream::~Stream() { delete link_; }

namespace reactor_detail {

struct Command {
  enum Kind { kAdd, kCancel, kCancelHost };
  explicit Command(Kind k) : kind(k) {}
  Kind kind;
  Stream* stream = nullptr;                 // kAdd (owned until added)
  int add_error = 0;                        // kAdd: epoll_ctl's errno on the JS thread
  std::shared_ptr<StreamControl> control;   // kCancel
  Host* host = nullptr;                     // kCancelHost
  std::string reason;
};

class Reactor {
 public:
  Reactor() = default;

  // Create the epoll set and the wake-up eventfd, start the thread.
  int Init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return errno;
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_.valid()) return errno;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // no stream: the wake-up
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) return errno;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kThreadStack);
    // Signals are never delivered to a reactor thread (as with libuv's pool).
    sigset_t all;
    sigset_t saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_t thread;
    const int rc = ::pthread_create(&thread, &attr, &Reactor::ThreadMain, this);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    // Named for top -H, ps -L and perf: the data path's CPU shows as such.
    if (rc == 0) ::pthread_setname_np(thread, "jumper-reactor");
    pthread_attr_destroy(&attr);
    return rc;
  }

  size_t load() const { return load_.load(std::memory_order_relaxed); }
  int epoll_fd() const { return epoll_.get(); }

  // Cancel and teardown commands: always woken up for.
  void Post(Command command) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      commands_.push_back(std::move(command));
      pending_.store(true, std::memory_order_release);
      wake = !signalled_;
      signalled_ = true;
    }
    if (wake) Wake();
  }

  // JS thread, at the end of StartStream: put the stream's fds in the epoll
  // set and queue its kAdd in one critical section. pending_ is raised
  // before the first epoll_ctl, so the reactor, woken by the stream's first
  // event, takes the queue (waiting on mu_ until this section ends) before
  // it looks at any event. A wake-up is needed only when no event may come:
  // registration failed, the priming step left work without a new edge, or
  // it already finished the stream (which must be retired and reported).
  void Register(Stream* stream) {
    load_.fetch_add(1, std::memory_order_relaxed);
    Command command(Command::kAdd);
    command.stream = stream;
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.store(true, std::memory_order_release);
      stream->registered_ = true;
      for (int slot = 0; slot < Stream::kSlots; slot++) {
        epoll_event ev{};
        ev.events = stream->interest(slot);
        ev.data.u64 = reinterpret_cast<uint64_t>(stream) | static_cast<uint64_t>(slot);
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stream->fd(slot), &ev) != 0) {
          command.add_error = errno;
          break;
        }
      }
      wake = (command.add_error != 0 || stream->primed_more_ || stream->finished()) && !signalled_;
      if (wake) signalled_ = true;
      commands_.push_back(std::move(command));
    }
    if (wake) Wake();
  }

 private:
  static void* ThreadMain(void* self) {
    static_cast<Reactor*>(self)->Run();
    return nullptr;
  }

  void Wake() {
    const uint64_t one = 1;
    ssize_t ignored = ::write(wake_.get(), &one, sizeof one);
    (void)ignored;
  }

  void Run() {
    epoll_event events[kMaxEvents];
    std::vector<Stream*> turn;
    for (;;) {
      const int n = ready_.empty() ? WaitForEvents(epoll_.get(), events, kMaxEvents, !streams_.empty()) : ::epoll_wait(epoll_.get(), events, kMaxEvents, 0);
      if (n < 0 && errno != EINTR) ::abort();  // EBADF/EINVAL: our own bug
      // Streams registered from the JS thread are added before their events.
      if (pending_.load(std::memory_order_acquire)) RunCommands();
      for (int i = 0; i < n; i++) {
        const uint64_t tag = events[i].data.u64;
        if (tag == 0) {
          uint64_t count;
          ssize_t ignored = ::read(wake_.get(), &count, sizeof count);
          (void)ignored;
          RunCommands();
          continue;
        }
        Stream* stream = reinterpret_cast<Stream*>(tag & ~kSlotMask);
        if (stream->finished()) continue;  // retired earlier in this batch
        stream->OnEvents(static_cast<int>(tag & kSlotMask), events[i].events);
        AfterDrive(stream, stream->Drive(Stream::kStepsPerTurn));
      }
      // Streams that stopped for fairness: one more turn each.
      turn.swap(ready_);
      for (Stream* stream : turn) {
        stream->link_->queued = false;
        if (!stream->finished()) AfterDrive(stream, stream->Drive(Stream::kStepsPerTurn));
      }
      turn.clear();
      for (Stream* stream : dead_) delete stream;
      dead_.clear();
    }
  }

  void AfterDrive(Stream* stream, bool more) {
    if (stream->finished()) {
      Retire(stream);
    } else if (more && !stream->link_->queued) {
      stream->link_->queued = true;
      ready_.push_back(stream);
    }
  }

  void RunCommands() {
    std::vector<Command> commands;
    {
      std::lock_guard<std::mutex> lock(mu_);
      commands.swap(commands_);
      pending_.store(false, std::memory_order_relaxed);
      signalled_ = false;
    }
    for (Command& c : commands) {
      switch (c.kind) {
        case Command::kAdd:
          Add(c.stream, c.add_error);
          break;
        case Command::kCancel:
          if (c.control->stream != nullptr) CancelOne(c.control->stream, c.reason);
          break;
        case Command::kCancelHost: {
          // Copy: retiring edits streams_.
          std::vector<Stream*> mine;
          for (Stream* s : streams_) {
            if (s->link_->host.get() == c.host) mine.push_back(s);
          }
          for (Stream* s : mine) CancelOne(s, c.reason);
          break;
        }
      }
    }
  }

  void CancelOne(Stream* stream, const std::string& reason) {
    if (stream->finished()) return;
    stream->Cancel(reason);
    AfterDrive(stream, false);
  }

  void Add(Stream* stream, int add_error) {
    stream->link_->index = streams_.size();
    streams_.push_back(stream);
    stream->link_->control->stream = stream;
    if (add_error != 0) stream->Fail("io_error", ErrnoName(add_error), "local");
    // Started and driven once by StartStream; registration reports what
    // became ready since, so one more turn here only if work was left.
    AfterDrive(stream, !stream->finished() && stream->primed_more_);
  }

  // Out of epoll, torn down, reported; freed after the current batch.
  void Retire(Stream* stream) {
    StreamLink* link = stream->link_;
    for (int slot = 0; slot < Stream::kSlots; slot++) {
      // Explicitly: another copy of the fd (a fork) would keep it registered.
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, stream->fd(slot), nullptr);
    }
    stream->Teardown();
    link->control->stream = nullptr;
    Stream* last = streams_.back();
    streams_[link->index] = last;
    last->link_->index = link->index;
    streams_.pop_back();
    load_.fetch_sub(1, std::memory_order_relaxed);

    auto* completion = new Completion{stream->result(), link->on_done};
    link->on_done = nullptr;
    Host* host = link->host.get();
    {
      std::lock_guard<std::mutex> lock(host->mu);
      if (!host->closed && host->report.NonBlockingCall(completion) == napi_ok) completion = nullptr;
      host->live--;
    }
    host->cv.notify_all();
    // Not delivered (environment gone): the reference dies with the
    // environment; it must not be deleted off the JS thread.
    if (completion != nullptr) CloseUndeliveredLinger(completion->result);
    delete completion;
    dead_.push_back(stream);
  }

  FdGuard epoll_;
  FdGuard wake_;
  std::atomic<size_t> load_{0};
  std::atomic<bool> pending_{false};  // commands_ is not empty (read without mu_)
  std::mutex mu_;
  std::vector<Command> commands_;  // guarded by mu_
  bool signalled_ = false;         // guarded by mu_: the eventfd was written since the last RunCommands
  // Reactor thread only.
  std::vector<Stream*> streams_;
  std::vector<Stream*> ready_;
  std::vector<Stream*> dead_;
};

// Process-wide, created on first use, never destroyed (detached threads
// may outlive static destructors).
std::mutex reactors_mu;
std::vector<Reactor*>* reactors = nullptr;  // guarded by reactors_mu

// The least loaded reactor; starts them on first use. 0 or an errno in *error.
Reactor* PickReactor(int* error, const char** syscall) {
  std::lock_guard<std::mutex> lock(reactors_mu);
  if (reactors == nullptr) {
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    const unsigned count = std::max(1u, std::min(kMaxReactors, cores > 0 ? static_cast<unsigned>(cores) : 1u));
    auto* all = new std::vector<Reactor*>();
    for (unsigned i = 0; i < count; i++) {
      auto* r = new Reactor();
      const int rc = r->Init();
      if (rc != 0) {
        // Only possible before any thread of this reactor runs: safe to free.
        delete r;
        if (all->empty()) {
          delete all;
          *error = rc;
          *syscall = "reactor_start";
          return nullptr;
        }
        break;  // run with fewer threads
      }
      all->push_back(r);
    }
    reactors = all;
  }
  Reactor* best = (*reactors)[0];
  for (Reactor* r : *reactors) {
    if (r->load() < best->load()) best = r;
  }
  return best;
}

void CallJs(Napi::Env env, Napi::Function /*unused*/, Host* host, Completion* raw) {
  std::unique_ptr<Completion> completion(raw);
  std::unique_ptr<Napi::FunctionReference> on_done(completion->on_done);
  if (env == nullptr) {
    // Environment teardown: the reference goes with it.
    on_done->SuppressDestruct();
    CloseUndeliveredLinger(completion->result);
    return;
  }
  if (--host->js_pending == 0) host->report.Unref(env);
  const StreamResult& r = completion->result;
  bool handed = false;
  try {
    Napi::Object out = Napi::Object::New(env);
    out.Set("reason", Napi::String::New(env, r.reason));
    if (!r.detail.empty()) out.Set("detail", Napi::String::New(env, r.detail));
    if (!r.side.empty()) out.Set("side", Napi::String::New(env, r.side));
    out.Set("bytesUp", Napi::Number::New(env, static_cast<double>(r.bytes_up)));
    out.Set("bytesDown", Napi::Number::New(env, static_cast<double>(r.bytes_down)));
    if (r.linger_fd >= 0) out.Set("lingerFd", Napi::Number::New(env, r.linger_fd));
    if (r.linger_fd >= 0 && !r.linger_pending.empty()) {
      out.Set("lingerPending", Napi::Buffer<uint8_t>::Copy(env, r.linger_pending.data(), r.linger_pending.size()));
    }
    handed = true;  // from here the fd is JS's (lingerClose), even if the callback throws
    on_done->Call({out});
  } catch (const Napi::Error& error) {
    if (!handed) CloseUndeliveredLinger(r);
    error.ThrowAsJavaScriptException();
  }
}

// JS thread only.
std::map<napi_env, std::shared_ptr<Host>>& Hosts() {
  static auto* hosts = new std::map<napi_env, std::shared_ptr<Host>>();
  return *hosts;
}

void HostCleanup(void* arg) {
  const napi_env env = static_cast<napi_env>(arg);
  auto it = Hosts().find(env);
  if (it == Hosts().end()) return;
  std::shared_ptr<Host> host = it->second;
  Hosts().erase(it);
  std::unique_lock<std::mutex> lock(host->mu);
  if (host->live > 0) {
    lock.unlock();
    std::vector<Reactor*> all;
    {
      std::lock_guard<std::mutex> rl(reactors_mu);
      if (reactors != nullptr) all = *reactors;
    }
    for (Reactor* r : all) {
      Command c(Command::kCancelHost);
      c.host = host.get();
      c.reason = "env_teardown";
      r->Post(std::move(c));
    }
    lock.lock();
    host->cv.wait_for(lock, kTeardownWait, [&] { return host->live == 0; });
  }
  host->closed = true;
}

std::shared_ptr<Host> HostFor(Napi::Env env) {
  auto it = Hosts().find(env);
  if (it != Hosts().end()) return it->second;
  auto host = std::make_shared<Host>();
  host->report = ReportFunction::New(env, "jumper_native.stream", 0, 1, host.get());
  host->report.Unref(env);
  napi_add_env_cleanup_hook(env, HostCleanup, static_cast<napi_env>(env));
  Hosts()[env] = host;
  return host;
}

void FinalizeHandle(Napi::Env /*env*/, std::shared_ptr<StreamControl>* handle) { delete handle; }

}  // namespace reactor_detail

// Here, after Reactor: it needs the reactor's epoll set.
bool Stream::WantWritable(int slot) {
  if (interest_[slot] & EPOLLOUT) return true;
  interest_[slot] |= EPOLLOUT;
  // Before registration (the priming step) the ADD takes the new interest.
  if (!registered_) return true;
  epoll_event ev{};
  ev.events = interest_[slot];
  ev.data.u64 = reinterpret_cast<uint64_t>(this) | static_cast<uint64_t>(slot);
  // MOD reports EPOLLOUT at once if the socket has room again by now.
  if (::epoll_ctl(link_->reactor->epoll_fd(), EPOLL_CTL_MOD, fds_[slot], &ev) == 0) return true;
  return Fail("io_error", ErrnoName(errno), "local");
}

using reactor_detail::Command;
using reactor_detail::Host;
using reactor_detail::Reactor;
using reactor_detail::StreamControl;
using reactor_detail::FinalizeHandle;
using reactor_detail::HostFor;
using reactor_detail::PickReactor;

Napi::Value StartStream(Napi::Env env, std::unique_ptr<Stream> stream, Napi::Function on_done) {
  int error = 0;
  const char* syscall = "";
  Reactor* reactor = PickReactor(&error, &syscall);
  if (reactor == nullptr) throw MakeErrnoError(env, error, syscall, "native data path");
  std::shared_ptr<Host> host = HostFor(env);
  auto control = std::make_shared<StreamControl>();
  control->reactor = reactor;
  // Everything that can throw comes before the stream is started: once it
  // is registered, the reactor owns the fds and JS must not see a throw.
  auto handle_data = std::make_unique<std::shared_ptr<StreamControl>>(control);
  auto handle = Napi::External<std::shared_ptr<StreamControl>>::New(env, handle_data.get(), FinalizeHandle);
  handle_data.release();  // the handle's finalizer frees it
  auto on_done_ref = std::make_unique<Napi::FunctionReference>(Napi::Persistent(on_done));
  auto* link = new StreamLink();
  link->reactor = reactor;
  link->host = host;
  link->control = control;
  link->on_done = on_done_ref.release();
  stream->link_ = link;
  {
    std::lock_guard<std::mutex> lock(host->mu);
    host->live++;
  }
  if (host->js_pending++ == 0) host->report.Ref(env);
  // Prime on this thread: the bytes handed over, and whatever is readable
  // already (a new connection's first request or reply), move now instead
  // of after the reactor thread wakes up: one scheduling delay fewer before
  // a new connection's first byte on a busy machine. One step only, so a
  // bulk start does not hold the JS thread. No other thread sees the stream
  // yet; the command queue's lock publishes its state to the reactor.
  stream->Start();
  stream->primed_more_ = !stream->finished() && stream->Drive(1);
  reactor->Register(stream.release());  // the reactor owns it now
  return handle;
}

Napi::Value CancelStreamJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(env, "cancel expects a stream handle");
  std::string reason = "cancelled";
  if (info.Length() >= 2 && info[1].IsString()) reason = info[1].As<Napi::String>().Utf8Value();
  auto* handle = info[0].As<Napi::External<std::shared_ptr<StreamControl>>>().Data();
  if (handle == nullptr || !*handle) return env.Undefined();
  Command c(Command::kCancel);
  c.control = *handle;
  c.reason = std::move(reason);
  (*handle)->reactor->Post(std::move(c));
  return env.Undefined();
}

}  // namespace jumper
