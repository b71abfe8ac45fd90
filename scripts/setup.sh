#!/usr/bin/env bash
# Make a fresh clone runnable: system peers (when root and missing), npm
# dependencies, the TypeScript build and the native addon. Idempotent and
# quick when everything is already in place.
#   scripts/setup.sh           what the demo needs (and libsodium-dev for the addon)
#   scripts/setup.sh --test    + iproute2, util-linux, spiped, python3, systemd, etcd-server (test peers)
#   scripts/setup.sh --bench   + spiped, stunnel4, socat, openssl (benchmark rivals)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"

missing=()
want() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
# The addon takes X25519 from libsodium when its headers are there at build
# time (about 40 % less handshake CPU than OpenSSL's); optional, so only
# installed when root, like everything here.
want pkg-config pkg-config
pkg-config --exists libsodium 2>/dev/null || missing+=(libsodium-dev)
case "$mode" in
  --test)
    want ip iproute2; want unshare util-linux; want setpriv util-linux; want spiped spiped
    want python3 python3; want systemd-socket-activate systemd; want etcd etcd-server; want openssl openssl ;;
  --demo-balance)
    want etcd etcd-server ;;
  --bench)
    want spiped spiped; want stunnel4 stunnel4; want socat socat; want openssl openssl
    want systemd-socket-activate systemd ;;
esac
installed=0
if [ "${#missing[@]}" -gt 0 ]; then
  # Deduplicate package names.
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    installed=1
  else
    echo "setup: notice: missing ${pkgs[*]} (not root or no apt-get); the tests and benchmarks that need them will skip, and without libsodium-dev the addon uses OpenSSL's slower X25519" >&2
  fi
fi

# npm install runs the native build (install script) and tsc (prepare).
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || \
   { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
else
  native=native/build/Release/jumper_native.node
  # Also after an install: a new libsodium-dev changes what the addon holds.
  if [ ! -f "$native" ] || [ "$installed" -eq 1 ] || [ -n "$(find native/src native/binding.gyp -newer "$native" 2>/dev/null | head -1)" ]; then
    bash scripts/build-native.sh >&2
  fi
  npx --no-install tsc -p tsconfig.json >&2
fi
chmod +x dist/cli/*.js 2>/dev/null || true
