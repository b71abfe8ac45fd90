// fd_flags.h — O_NONBLOCK on a descriptor: fcntl(2) F_GETFL / F_SETFL.
// The flag belongs to the open file description, which a spawned child's
// stdio or a handed-off socket shares with the jumper; see
// src/native/fd-flags.ts for when each side needs which mode. The native
// data paths (record_pump.cc, splice_pump.cc) use SetFdNonBlocking too.
#pragma once

#include <napi.h>

namespace jumper {

// Sets or clears O_NONBLOCK; false with errno set on failure.
bool SetFdNonBlocking(int fd, bool on);

// setNonBlocking(fd, on): SetFdNonBlocking for JS. Throws a TypeError /
// RangeError for bad arguments and a system error (fcntl) on failure.
Napi::Value SetNonBlockingJs(const Napi::CallbackInfo& info);

}  // namespace jumper
