// typed_args.h — argument checks shared by the bindings: byte arrays (the
// crypto bindings, noise_crypto.cc and record_aead.cc), file descriptors
// (fd_flags.cc, fd_passing.cc, socket_probe.cc, stream_args.cc, dupFd) and
// bounded integers (js_api.cc, keepalive.cc, busy_poll.cc, record_aead.cc,
// and the counters of record_pump.cc).
// TypeError/RangeError, thrown before any work is done.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>

namespace jumper {

// info[index] as a Uint8Array (a Buffer is one); TypeError otherwise.
Napi::Uint8Array Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// The same, exactly `length` bytes long; RangeError otherwise.
Napi::Uint8Array FixedUint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length);

// `value` as a file descriptor: a number (TypeError otherwise) that is an
// integer from 0 to INT_MAX (RangeError otherwise). Not checked for being open.
int FdValue(Napi::Env env, const Napi::Value& value, const std::string& name);

// info[index] as a file descriptor (FdValue).
int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// `value` as a whole number in [min, max] (bounds within 2^53, where every
// integer is a double): a number (TypeError "NAME must be a number"
// otherwise) that is finite, whole and in range (RangeError
// "NAME must be an integer in [MIN, MAX]" otherwise). The one check behind
// the integer arguments below and the record counters.
double WholeNumberValue(Napi::Env env, const Napi::Value& value, const std::string& name, double min, double max);

// info[index] as an integer in [min, max] (WholeNumberValue).
int IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int min, int max);

}  // namespace jumper
