// splice_pump.h — the native plain forwarder: two connected sockets joined
// with splice(2) through a pipe per direction, no copy through user space.
//
//   startSplice({ localFd, remoteFd, localPending?, remotePending?, onDone }) -> handle
//   cancelSplice(handle, reason)
//
// Runs as a Stream of the shared reactor (reactor.h). EOF on one side
// becomes shutdown(SHUT_WR) on the other; 'done' once both directions
// ended; any error resets both sockets (SO_LINGER 0). Reports once:
//   onDone({ reason: 'done'|'peer_reset'|'io_error'|'cancelled', detail?,
//            side?: 'plain' (local) | 'wire' (remote) | 'local',
//            bytesUp (local -> remote), bytesDown (remote -> local) })
//
// Man pages relied on: splice(2), pipe2(2), fcntl(2) (F_SETPIPE_SZ),
// send(2), shutdown(2), socket(7) (SO_LINGER), epoll(7).
#pragma once

#include <napi.h>

namespace jumper {

Napi::Value StartSpliceJs(const Napi::CallbackInfo& info);
Napi::Value CancelSpliceJs(const Napi::CallbackInfo& info);

}  // namespace jumper
