// errno_error.h — build a JS Error describing a failed system call, shaped
// like Node's own system errors: `errno` (negative, as in Node, so
// util.getSystemErrorName(err.errno) works), `code` ('EPERM', ...) and
// `syscall` ('setns', ...).
//
// Man pages relied on: errno(3), strerror(3) (strerrorname_np, glibc 2.32+).
#pragma once

#include <napi.h>

#include <string>

namespace jumper {

// `context` (e.g. the namespace path) is appended to the message.
Napi::Error MakeErrnoError(Napi::Env env, int error, const char* syscall,
                           const std::string& context);

}  // namespace jumper
