// stream_args.h — validation of the options objects the native data paths
// take from JS (startPump, startSplice): fds that must be sockets, byte
// buffers handed over from JS. Throws TypeError/RangeError (or an errno
// Error from fstat) on the JS thread, before anything is started.
//
// Man pages relied on: fstat(2).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace jumper {

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);

// opts[name]: an fd (integer >= 0) that is open and a socket.
int SocketFdField(Napi::Env env, const Napi::Object& opts, const char* name);

// opts[name]: a Uint8Array copied out, or empty when undefined/null.
std::vector<uint8_t> BytesField(Napi::Env env, const Napi::Object& opts, const char* name);

}  // namespace jumper
