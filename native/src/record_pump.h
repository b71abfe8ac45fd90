// record_pump.h — the native record pump: one connection's transport
// records (src/proto/record.ts) moved off the JS thread.
//
//   startPump(opts) -> handle      start a dedicated thread that owns both fds
//   cancelPump(handle, reason)     stop it promptly (reports 'cancelled')
//   dupFd(fd) -> fd                F_DUPFD_CLOEXEC copy of a socket fd
//
// The thread seals plain -> wire and opens wire -> plain with
// ChaCha20-Poly1305 (OpenSSL EVP, the copy Node itself exports), in one
// poll(2) loop over both non-blocking sockets plus a cancel eventfd, and
// reports once through a thread-safe function:
//   onDone({ reason, detail?, side, bytesUp, bytesDown })
//
// Man pages relied on: poll(2), recv(2), send(2), shutdown(2), eventfd(2),
// fcntl(2), socket(7) (SO_LINGER), pthread_create(3), pthread_sigmask(3).
#pragma once

#include <napi.h>

namespace jumper {

Napi::Value StartPumpJs(const Napi::CallbackInfo& info);
Napi::Value CancelPumpJs(const Napi::CallbackInfo& info);
Napi::Value DupFdJs(const Napi::CallbackInfo& info);

}  // namespace jumper
