// dedicated_thread.h — run one socket job on a fresh, short-lived
// std::thread and settle a JS Promise with its result.
//
// Why not Napi::AsyncWorker: that runs on the libuv thread pool, and a job
// that calls setns(2) would leave a pool thread in a foreign network
// namespace for every later fs/dns/crypto task. A thread of our own enters
// the namespace and then exits, so neither the JS thread nor the pool ever
// changes namespace. The result travels back through a
// Napi::TypedThreadSafeFunction (the only safe way to reach the JS thread).
//
// Man pages relied on: pthread_create(3), pthread_sigmask(3), close(2).
#pragma once

#include <napi.h>

#include <functional>
#include <string>

#include "netns_socket.h"

namespace jumper {

using SocketJob = std::function<SocketResult()>;

// Start `job` on its own thread. The promise resolves with the fd (a
// number) or rejects with an errno Error whose message mentions `context`.
// If the JS environment is torn down first, a created fd is closed.
Napi::Promise RunOnDedicatedThread(Napi::Env env, SocketJob job, std::string context);

}  // namespace jumper
