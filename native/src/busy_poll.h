// busy_poll.h — optional busy polling on the reactor threads (reactor.cc).
//
// Why: a reactor thread that sleeps in epoll_wait(2) must be woken for the
// next event. When the event comes from another CPU and the sleeping CPU has
// halted, the wake-up is an inter-processor interrupt; in a virtual machine
// whose kernel does not poll before halting (guest_halt_poll_ns=0), that is
// a trip through the hypervisor of tens of microseconds, several times what
// a proxy hop costs (docs/performance.md). With a budget set, a reactor that
// has been woken keeps polling after it handled the events (epoll_wait with a
// zero timeout, sched_yield(2) between polls to offer its CPU to other
// runnable tasks there) for up to that long before it sleeps again. It
// trades CPU for latency, so it is off unless the operator sets it, like
// HAProxy's busy-polling or the kernel's net.core.busy_poll.
//
// A thread allowed on one CPU only never polls: the event it waits for can
// only be produced once it gives the CPU up.
//
// Man pages relied on: epoll_wait(2), sched_yield(2), sched_getaffinity(2),
// clock_gettime(2).
#pragma once

#include <napi.h>
#include <sys/epoll.h>

namespace jumper {

// The largest budget setBusyPoll takes, in microseconds (10 ms). Keep in
// sync with MAX_BUSY_POLL_US in src/options.ts.
constexpr int kMaxBusyPollMicros = 10000;

// epoll_wait(2) on `epoll_fd` as a reactor does when it has nothing queued:
// with the busy-poll budget set, streams to wait for, and more than one CPU
// allowed, polls for up to the budget first, then blocks. Returns what
// epoll_wait returns.
int WaitForEvents(int epoll_fd, epoll_event* events, int max_events, bool has_streams);

// setBusyPoll(microseconds): the budget for every reactor thread of the
// process, 0 (the default) to sleep at once. Takes effect from each
// reactor's next wait. RangeError outside [0, kMaxBusyPollMicros].
Napi::Value SetBusyPollJs(const Napi::CallbackInfo& info);

}  // namespace jumper
