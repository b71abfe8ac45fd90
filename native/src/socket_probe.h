// socket_probe.h — what the kernel holds for a connected socket right now,
// without consuming anything: recv(2) with MSG_PEEK | MSG_DONTWAIT.
// An event loop learns of a peer's FIN or reset only on its next turn; a
// preconnected wire (src/roles/preconnect.ts) is checked with this before a
// stream is put on it. Policy lives in TypeScript.
#pragma once

#include <napi.h>

namespace jumper {

// peekSocket(fd) -> 'open' (nothing to read), 'data' (bytes waiting),
// 'eof' (the peer sent FIN), or the errno name of a pending error such as
// 'ECONNRESET'. Throws a TypeError/RangeError for a bad fd argument.
Napi::Value PeekSocketJs(const Napi::CallbackInfo& info);

}  // namespace jumper
