# Build description for the jumper native addon (node-gyp).
#
# One target, `jumper_native`, producing build/Release/jumper_native.node.
# C++ exceptions are enabled through node-addon-api's `node_addon_api_except`
# target (see node_modules/node-addon-api/except.gypi); everything else about
# the flags is set here so a reviewer sees the whole compiler line in one place.
{
  "targets": [
    {
      "target_name": "jumper_native",
      "sources": [
        "src/addon.cc",
        "src/js_api.cc",
        "src/dedicated_thread.cc",
        "src/netns_socket.cc",
        "src/socket_address.cc",
        "src/errno_error.cc",
        "src/fd_passing.cc",
        # Shared epoll reactor threads under the native data paths.
        "src/reactor.cc",
        # Optional polling before a reactor sleeps (--busy-poll).
        "src/busy_poll.cc",
        "src/stream_args.cc",
        # Native record pump; its ChaCha20-Poly1305 is OpenSSL EVP from the
        # node binary itself (headers in <nodedir>/include/node/openssl,
        # symbols exported by node): no extra library is linked.
        "src/record_pump.cc",
        # Plain forwarder: splice(2) through pipes.
        "src/splice_pump.cc",
        # Handshake primitives (X25519, BLAKE2b, HMAC-BLAKE2b HKDF), OpenSSL too.
        "src/noise_crypto.cc",
        # X25519 from libsodium when found (see "conditions"), else empty.
        "src/x25519_sodium.cc",
        "src/typed_args.cc",
        # One record sealed/opened per call, for the records JS handles.
        "src/record_aead.cc",
        # TCP keep-alive with its interval and count (Node sets only the idle time).
        "src/keepalive.cc",
        # Peek at a socket's kernel state (FIN, reset) before the event loop has seen it.
        "src/socket_probe.cc",
        # One datagram to a Unix socket (systemd's $NOTIFY_SOCKET).
        "src/unix_datagram.cc",
        # O_NONBLOCK of a descriptor shared with a child or a hand-off receiver.
        "src/fd_flags.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        # Fail the build if a node-addon-api API we use is deprecated.
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc": [
        "-std=c++17"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-fstack-protector-strong",
        # Re-define rather than add: some toolchains predefine it.
        "-U_FORTIFY_SOURCE",
        "-D_FORTIFY_SOURCE=2"
      ],
      "ldflags": [
        "-Wl,-z,relro",
        "-Wl,-z,now",
        "-Wl,-z,noexecstack"
      ],
      # libsodium's X25519 is faster than OpenSSL 3.0's (x25519_sodium.h):
      # used when pkg-config finds it (Debian: libsodium-dev, which
      # scripts/setup.sh installs when root); without it the addon is
      # built without those three exports and OpenSSL does X25519.
      "conditions": [
        ["<!(pkg-config --exists libsodium 2>/dev/null && echo 1 || echo 0)==1", {
          "defines": ["JUMPER_HAVE_LIBSODIUM"],
          "cflags": ["<!@(pkg-config --cflags libsodium)"],
          "libraries": ["<!@(pkg-config --libs libsodium)"]
        }]
      ],
      "configurations": {
        "Release": {
          # node's common.gypi asks for -O3; -O2 is what the hardening
          # flags are validated with (and _FORTIFY_SOURCE needs >= -O1).
          "cflags!": ["-O3"],
          "cflags_cc!": ["-O3"],
          "cflags": ["-O2"]
        },
        "Debug": {
          # _FORTIFY_SOURCE needs an optimising build; -Og keeps it debuggable.
          "cflags!": ["-O0"],
          "cflags_cc!": ["-O0"],
          "cflags": ["-Og"]
        }
      }
    }
  ]
}
