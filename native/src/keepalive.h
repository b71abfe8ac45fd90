// keepalive.h — TCP keep-alive with all three timers set (tcp(7)).
// Node's setKeepAlive sets only the idle time; libuv then fixes the probe
// interval at 1 s and the count at 10, so a peer whose probes are lost for
// 10 s (e.g. a storm of synchronised probes overflowing a softnet backlog)
// is declared dead. Policy (the values) lives in src/addr/keepalive.ts.
#pragma once

#include <napi.h>

namespace jumper {

// setKeepAlive(fd, idleSeconds, intervalSeconds, count): SO_KEEPALIVE on, then
// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT. Throws a system error (errno,
// code, syscall) when a setsockopt fails, e.g. ENOPROTOOPT on a Unix socket.
Napi::Value SetKeepAliveJs(const Napi::CallbackInfo& info);

// getKeepAlive(fd) -> { enabled, idleSeconds, intervalSeconds, count }
Napi::Value GetKeepAliveJs(const Napi::CallbackInfo& info);

}  // namespace jumper
