// unix_datagram.h — send one datagram to a Unix datagram socket by path.
// Node has no AF_UNIX SOCK_DGRAM; systemd's notification socket
// ($NOTIFY_SOCKET, see src/activation/sd-notify.ts) is one. Policy (what to
// send, when) lives in TypeScript.
#pragma once

#include <napi.h>

namespace jumper {

// sendUnixDatagram(path, bytes): one sendto(2) from a fresh socket. A path
// starting with '@' names an abstract socket (the '@' becomes a NUL byte).
// Never blocks (MSG_DONTWAIT). Throws a TypeError/RangeError for bad
// arguments and an errno error (syscall 'socket' or 'sendto') on failure.
Napi::Value SendUnixDatagramJs(const Napi::CallbackInfo& info);

}  // namespace jumper
