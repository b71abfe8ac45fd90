// fd_passing.h — hand-off protocol v1: pass one descriptor over a connected
// Unix stream socket with SCM_RIGHTS (payload: the single byte 0x01).
//
// Man pages relied on: unix(7) (SCM_RIGHTS), sendmsg(2), recvmsg(2), cmsg(3).
#pragma once

#include <napi.h>

namespace jumper {

// sendFd(viaFd, fd): throws a system error (sendmsg) on failure.
Napi::Value SendFdJs(const Napi::CallbackInfo& info);
// recvFd(viaFd) -> fd, or -1 when nothing arrived yet (EAGAIN).
// Throws a system error on failure, EMFILE when a well-formed hand-off's
// descriptor was dropped (no room under RLIMIT_NOFILE, or refused by a
// security module), an EPROTO error on a malformed message.
Napi::Value RecvFdJs(const Napi::CallbackInfo& info);

}  // namespace jumper
