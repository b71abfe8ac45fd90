// js_api.h — the two functions exported to JavaScript: argument validation
// (TypeError/RangeError, thrown synchronously) and hand-off to a dedicated
// namespace thread. All policy (designators, defaults, error mapping) lives
// in TypeScript (src/netns/sockets.ts); this is the syscall-level surface.
//
// Man pages relied on: setns(2), socket(2), bind(2), listen(2), connect(2).
#pragma once

#include <napi.h>

namespace jumper {

// listenInNetns(nsPath, family, host, port, backlog, umask): Promise<fd>
// (umask -1: leave it; 0..0777: bind under it, on the job thread only)
Napi::Value ListenInNetnsJs(const Napi::CallbackInfo& info);

// connectInNetns(nsPath, family, host, port, timeoutMs): Promise<fd>
Napi::Value ConnectInNetnsJs(const Napi::CallbackInfo& info);

}  // namespace jumper
