// fd_flags.h — O_NONBLOCK on a descriptor: fcntl(2) F_GETFL / F_SETFL;
// and SO_LINGER {on, 0}, so that a close resets the connection.
// The flag belongs to the open file description, which a spawned child's
// stdio or a handed-off socket shares with the jumper; see
// src/native/fd-flags.ts for when each side needs which mode. The native
// data paths (record_pump.cc, splice_pump.cc) use SetFdNonBlocking too.
#pragma once

#include <napi.h>

namespace jumper {

// Sets or clears O_NONBLOCK; false with errno set on failure.
bool SetFdNonBlocking(int fd, bool on);

// SO_LINGER {1, 0}: the socket's close sends a reset (RST), not a FIN, and
// drops what is unsent. For a failed stream, whose peer must not take the
// end for a clean EOF. Best effort: a socket already gone is ignored.
void ArmResetOnClose(int fd);

// setNonBlocking(fd, on): SetFdNonBlocking for JS. Throws a TypeError /
// RangeError for bad arguments and a system error (fcntl) on failure.
Napi::Value SetNonBlockingJs(const Napi::CallbackInfo& info);

}  // namespace jumper
