// js_api.cc — the two functions exported to JavaScript.
//
// Validation happens here, on the JS thread, before any thread is started,
// so a bad call fails synchronously with a TypeError/RangeError instead of
// a half-started namespace operation.
//
// Man pages relied on: setns(2), socket(2), bind(2), listen(2), connect(2).
#include "js_api.h"

#include <climits>
#include <string>
#include <utility>

#include "dedicated_thread.h"
#include "netns_socket.h"
#include "socket_address.h"
#include "typed_args.h"

namespace jumper {

namespace {

constexpr size_t kConnectArgumentCount = 5;
constexpr size_t kListenArgumentCount = 6;  // + umask
constexpr int kArgNsPath = 0;
constexpr int kArgFamily = 1;
constexpr int kArgHost = 2;
constexpr int kArgPort = 3;
constexpr int kArgLast = 4;  // backlog or timeoutMs
constexpr int kArgUmask = 5;  // listen only

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

std::string StringArg(const Napi::CallbackInfo& info, int index, const char* name) {
  if (!info[index].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

struct CommonArgs {
  std::string ns_path;
  SocketAddress address;
  std::string context;  // for error messages: "<nsPath> <host>:<port>"
};

CommonArgs ParseCommonArgs(const Napi::CallbackInfo& info, size_t argument_count) {
  Napi::Env env = info.Env();
  if (info.Length() != argument_count) {
    ThrowType(env, "expected " + std::to_string(argument_count) + " arguments");
  }
  CommonArgs args;
  args.ns_path = StringArg(info, kArgNsPath, "nsPath");
  if (args.ns_path.empty() || args.ns_path.find('\0') != std::string::npos) {
    ThrowType(env, "nsPath must be a non-empty path without NUL bytes");
  }
  Family family;
  if (!ParseFamily(StringArg(info, kArgFamily, "family"), &family)) {
    ThrowType(env, "family must be 'ipv4', 'ipv6' or 'unix'");
  }
  const std::string host = StringArg(info, kArgHost, "host");
  const int port = IntArg(info, kArgPort, "port", 0, 65535);
  std::string error;
  if (!BuildSocketAddress(family, host, port, &args.address, &error)) ThrowType(env, error);
  args.context = args.ns_path + " " +
                 (family == Family::kUnix ? host : host + ":" + std::to_string(port));
  return args;
}

}  // namespace

Napi::Value ListenInNetnsJs(const Napi::CallbackInfo& info) {
  CommonArgs args = ParseCommonArgs(info, kListenArgumentCount);
  const int backlog = IntArg(info, kArgLast, "backlog", 0, INT_MAX);
  const int umask = IntArg(info, kArgUmask, "umask", -1, 0777);
  ListenRequest request{std::move(args.ns_path), std::move(args.address), backlog, umask};
  return RunOnDedicatedThread(
      info.Env(), [request = std::move(request)]() { return ListenInNetns(request); },
      std::move(args.context));
}

Napi::Value ConnectInNetnsJs(const Napi::CallbackInfo& info) {
  CommonArgs args = ParseCommonArgs(info, kConnectArgumentCount);
  const int timeout_ms = IntArg(info, kArgLast, "timeoutMs", 1, INT_MAX);
  ConnectRequest request{std::move(args.ns_path), std::move(args.address), timeout_ms};
  return RunOnDedicatedThread(
      info.Env(), [request = std::move(request)]() { return ConnectInNetns(request); },
      std::move(args.context));
}

}  // namespace jumper
