// dedicated_thread.cc — run one socket job on a fresh, short-lived
// std::thread and settle a JS Promise with its result.
//
// Man pages relied on: pthread_create(3), pthread_sigmask(3), close(2).
#include "dedicated_thread.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>
#include <system_error>
#include <thread>
#include <utility>

#include "errno_error.h"

namespace jumper {

namespace {

// Only one result is ever queued per thread-safe function.
constexpr size_t kMaxQueueSize = 1;
constexpr size_t kInitialThreadCount = 1;
constexpr const char* kResourceName = "jumper_native.netns";

struct Pending {
  Napi::Promise::Deferred deferred;
  SocketJob job;
  std::string context;
  SocketResult result;
};

void CloseResultFd(const SocketResult& result) {
  if (result.fd >= 0) ::close(result.fd);
}

// Runs on the JS thread (or with env == nullptr during teardown).
void Settle(Napi::Env env, Napi::Function /*unused*/, std::nullptr_t* /*context*/,
            Pending* raw) {
  std::unique_ptr<Pending> pending(raw);
  if (env == nullptr) {
    // The environment is going away: nobody can receive the fd.
    CloseResultFd(pending->result);
    return;
  }
  try {
    const SocketResult& result = pending->result;
    if (result.error == 0) {
      pending->deferred.Resolve(Napi::Number::New(env, result.fd));
    } else {
      pending->deferred.Reject(
          MakeErrnoError(env, result.error, result.syscall, pending->context).Value());
    }
  } catch (const Napi::Error& error) {
    // Only reachable if the engine itself is failing; surface it rather
    // than let a C++ exception unwind through Node-API's C frames.
    CloseResultFd(pending->result);
    error.ThrowAsJavaScriptException();
  }
}

using SettleFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, Pending, Settle>;

// Blocks every signal for its lifetime. A std::thread inherits the mask of
// its creator, so creating the worker inside this scope means signals are
// never delivered to it (same policy as libuv's pool threads): syscalls are
// not interrupted and handlers keep running where Node expects them.
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~AllSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t saved_{};
};

void ThreadMain(SettleFunction settle, Pending* pending) {
  try {
    pending->result = pending->job();
  } catch (const std::bad_alloc&) {
    // The job only allocates when copying strings; nothing else throws.
    pending->result = SocketResult::Fail(ENOMEM, "thread");
  }
  pending->job = nullptr;  // drop captured request state on this thread
  if (settle.BlockingCall(pending) != napi_ok) {
    // napi_closing: the environment is shutting down and Settle will never
    // run for this item, so clean up here.
    CloseResultFd(pending->result);
    delete pending;
  }
  settle.Release();
}

}  // namespace

Napi::Promise RunOnDedicatedThread(Napi::Env env, SocketJob job, std::string context) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Promise promise = deferred.Promise();
  auto pending = std::make_unique<Pending>(
      Pending{deferred, std::move(job), std::move(context), SocketResult{}});

  SettleFunction settle =
      SettleFunction::New(env, kResourceName, kMaxQueueSize, kInitialThreadCount);
  try {
    AllSignalsBlocked blocked;
    std::thread(ThreadMain, settle, pending.get()).detach();
  } catch (const std::system_error& error) {
    settle.Release();
    const int code = error.code().value() != 0 ? error.code().value() : EAGAIN;
    deferred.Reject(MakeErrnoError(env, code, "pthread_create", pending->context).Value());
    return promise;
  }
  pending.release();  // now owned by the thread, then by Settle
  return promise;
}

}  // namespace jumper
