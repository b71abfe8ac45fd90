// record_pump.h — the native record pump: one connection's transport
// records (src/proto/record.ts) moved off the JS thread.
//
//   startPump(opts) -> handle      hand both fds to a reactor thread (reactor.h)
//   cancelPump(handle, reason)     stop it promptly (reports 'cancelled')
//   dupFd(fd) -> fd                F_DUPFD_CLOEXEC copy of a socket fd
//
// The pump seals plain -> wire and opens wire -> plain with
// ChaCha20-Poly1305 (OpenSSL EVP, the copy Node itself exports), driven by
// edge-triggered epoll on a shared reactor thread, and reports once
// through the reactor's thread-safe function:
//   onDone({ reason, detail?, side, bytesUp, bytesDown })
//
// Man pages relied on: recv(2), send(2), shutdown(2), fcntl(2),
// socket(7) (SO_LINGER), epoll(7).
#pragma once

#include <napi.h>

namespace jumper {

Napi::Value StartPumpJs(const Napi::CallbackInfo& info);
Napi::Value CancelPumpJs(const Napi::CallbackInfo& info);
Napi::Value DupFdJs(const Napi::CallbackInfo& info);

}  // namespace jumper
