// addon.cc — module entry point: registers the exports and nothing else.
//
//   listenInNetns(nsPath, family, host, port, backlog, umask) -> Promise<fd>
//   connectInNetns(nsPath, family, host, port, timeoutMs) -> Promise<fd>
//   startPump(opts) -> handle, cancelPump(handle, reason), dupFd(fd) -> fd
//     (the native record pump, see record_pump.h)
//   startSplice(opts) -> handle, cancelSplice(handle, reason)
//     (the splice forwarder, see splice_pump.h; both run on reactor.h)
//   sendFd(viaFd, fd), recvFd(viaFd) -> fd | -1   (hand-off, fd_passing.h)
//   x25519KeyPair, x25519KeyPairBatch, x25519Agree, noiseHkdf, blake2b (handshake, noise_crypto.h)
//   sodiumX25519KeyPair, sodiumX25519KeyPairBatch, sodiumX25519Agree (only when built
//     with libsodium, x25519_sodium.h)
//   sealRecord, openRecord (one transport record, record_aead.h)
//   setKeepAlive, getKeepAlive (TCP keep-alive timers, keepalive.h)
//   peekSocket(fd) -> 'open' | 'data' | 'eof' | errno name (socket_probe.h)
//   sendUnixDatagram(path, bytes) (systemd notifications, unix_datagram.h)
//   setNonBlocking(fd, on) (O_NONBLOCK, fd_flags.h)
//   setBusyPoll(microseconds) (reactor threads poll before sleeping, busy_poll.h)
//
// See js_api.cc for validation and netns_socket.cc for the syscalls.
// Man pages relied on: setns(2), socket(2), bind(2), listen(2), connect(2).
#include <napi.h>

#include "busy_poll.h"
#include "fd_flags.h"
#include "fd_passing.h"
#include "js_api.h"
#include "keepalive.h"
#include "noise_crypto.h"
#include "record_aead.h"
#include "record_pump.h"
#include "socket_probe.h"
#include "splice_pump.h"
#include "unix_datagram.h"
#include "x25519_sodium.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listenInNetns", Napi::Function::New(env, jumper::ListenInNetnsJs, "listenInNetns"));
  exports.Set("connectInNetns",
              Napi::Function::New(env, jumper::ConnectInNetnsJs, "connectInNetns"));
  // Native record pump (record_pump.cc).
  exports.Set("startPump", Napi::Function::New(env, jumper::StartPumpJs, "startPump"));
  exports.Set("cancelPump", Napi::Function::New(env, jumper::CancelPumpJs, "cancelPump"));
  exports.Set("dupFd", Napi::Function::New(env, jumper::DupFdJs, "dupFd"));
  // Splice forwarder (splice_pump.cc).
  exports.Set("startSplice", Napi::Function::New(env, jumper::StartSpliceJs, "startSplice"));
  exports.Set("cancelSplice", Napi::Function::New(env, jumper::CancelSpliceJs, "cancelSplice"));
  // Hand-off (fd_passing.cc).
  exports.Set("sendFd", Napi::Function::New(env, jumper::SendFdJs, "sendFd"));
  exports.Set("recvFd", Napi::Function::New(env, jumper::RecvFdJs, "recvFd"));
  // Handshake primitives (noise_crypto.cc).
  exports.Set("x25519KeyPair", Napi::Function::New(env, jumper::X25519KeyPairJs, "x25519KeyPair"));
  exports.Set("x25519KeyPairBatch",
              Napi::Function::New(env, jumper::X25519KeyPairBatchJs, "x25519KeyPairBatch"));
  exports.Set("x25519Agree", Napi::Function::New(env, jumper::X25519AgreeJs, "x25519Agree"));
  exports.Set("noiseHkdf", Napi::Function::New(env, jumper::NoiseHkdfJs, "noiseHkdf"));
  exports.Set("blake2b", Napi::Function::New(env, jumper::Blake2bJs, "blake2b"));
  // Faster X25519 when libsodium was found at build time (x25519_sodium.cc).
  jumper::RegisterSodiumX25519(env, exports);
  // One transport record per call (record_aead.cc).
  exports.Set("sealRecord", Napi::Function::New(env, jumper::SealRecordJs, "sealRecord"));
  exports.Set("openRecord", Napi::Function::New(env, jumper::OpenRecordJs, "openRecord"));
  // TCP keep-alive (keepalive.cc).
  exports.Set("setKeepAlive", Napi::Function::New(env, jumper::SetKeepAliveJs, "setKeepAlive"));
  exports.Set("getKeepAlive", Napi::Function::New(env, jumper::GetKeepAliveJs, "getKeepAlive"));
  // Kernel-side socket state without reading (socket_probe.cc).
  exports.Set("peekSocket", Napi::Function::New(env, jumper::PeekSocketJs, "peekSocket"));
  // One datagram to a Unix socket: sd_notify (unix_datagram.cc).
  exports.Set("sendUnixDatagram", Napi::Function::New(env, jumper::SendUnixDatagramJs, "sendUnixDatagram"));
  // O_NONBLOCK of a shared open socket (fd_flags.cc).
  exports.Set("setNonBlocking", Napi::Function::New(env, jumper::SetNonBlockingJs, "setNonBlocking"));

  exports.Set("setBusyPoll", Napi::Function::New(env, jumper::SetBusyPollJs, "setBusyPoll"));
  return exports;
}

}  // namespace

NODE_API_MODULE(jumper_native, Init)
