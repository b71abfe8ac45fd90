// busy_poll.cc — see busy_poll.h.
#include "busy_poll.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "typed_args.h"

namespace jumper {
namespace {

// Nanoseconds; read by every reactor before each wait.
std::atomic<int64_t> budget_ns{0};

int64_t NowNs() {
  timespec t;
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Polling only helps when whoever produces the next event can run at the
// same time, on another CPU. Asked per wait: taskset or systemd's
// CPUAffinity= may change the mask while the process runs.
bool MayRunElsewhere() {
  cpu_set_t set;
  // EINVAL: the kernel's mask is wider than cpu_set_t (over 1024 CPUs), so more than one.
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return errno == EINVAL;
  return CPU_COUNT(&set) > 1;
}

}  // namespace

int WaitForEvents(int epoll_fd, epoll_event* events, int max_events, bool has_streams) {
  const int64_t budget = budget_ns.load(std::memory_order_relaxed);
  if (budget > 0 && has_streams) {
    // Often something is ready already: only an empty first poll pays for the affinity check.
    int n = ::epoll_wait(epoll_fd, events, max_events, 0);
    if (n != 0 || !MayRunElsewhere()) return n != 0 ? n : ::epoll_wait(epoll_fd, events, max_events, -1);
    const int64_t deadline = NowNs() + budget;
    do {
      ::sched_yield();
      n = ::epoll_wait(epoll_fd, events, max_events, 0);
      if (n != 0) return n;
    } while (NowNs() < deadline);
  }
  return ::epoll_wait(epoll_fd, events, max_events, -1);
}

Napi::Value SetBusyPollJs(const Napi::CallbackInfo& info) {
  const int micros = IntArg(info, 0, "microseconds", 0, kMaxBusyPollMicros);
  budget_ns.store(static_cast<int64_t>(micros) * 1000, std::memory_order_relaxed);
  return info.Env().Undefined();
}

}  // namespace jumper
