#!/usr/bin/env bash
# Build the jumper native addon (native/ -> native/build/Release/jumper_native.node).
#
# Run by `npm install` (package.json "install" script) and by hand. It never
# fails the install: without the addon jumper still works, only the
# network-namespace features report NativeUnavailableError. On failure it
# prints ONE warning line and exits 0; the full compiler output is kept in
# native/build-native.log.
#
# Offline by design: node-gyp is pointed at local Node headers (nodedir) so it
# never tries to download them.
#
# Environment:
#   JUMPER_SKIP_NATIVE_BUILD=1   skip the build entirely
#   npm_config_nodedir           headers directory (npm sets it from .npmrc)
#   npm_config_node_gyp          node-gyp entry point (npm sets it)
set -uo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly NATIVE_DIR="$REPO_ROOT/native"
readonly ADDON="$NATIVE_DIR/build/Release/jumper_native.node"
readonly LOG="$NATIVE_DIR/build-native.log"

warn() {
  echo "jumper: WARNING: native addon not built ($1); network-namespace features are disabled. Details: ${LOG#"$REPO_ROOT"/}" >&2
  exit 0
}

if [[ "${JUMPER_SKIP_NATIVE_BUILD:-}" == "1" ]]; then
  echo "jumper: native addon build skipped (JUMPER_SKIP_NATIVE_BUILD=1)" >&2
  exit 0
fi

: >"$LOG" 2>/dev/null || { echo "jumper: WARNING: cannot write $LOG; native addon not built" >&2; exit 0; }

# The LD_PRELOAD hand-off shim is plain C with no Node dependency: build it
# first, so a failed addon build does not take it down too.
if bash "$REPO_ROOT/native/preload/build.sh" >>"$LOG" 2>&1; then
  echo "jumper: LD_PRELOAD shim built: native/preload/libjumper_preload.so"
else
  echo "jumper: WARNING: LD_PRELOAD shim not built; see ${LOG#"$REPO_ROOT"/}" >&2
fi

if [[ "$(uname -s)" != "Linux" ]]; then
  echo "setns(2) is Linux-only; uname -s = $(uname -s)" >>"$LOG"
  warn "not Linux"
fi

# Locate node-gyp: npm's own (set during npm lifecycle scripts), a local
# install, one on PATH, or the copy bundled with npm.
find_node_gyp() {
  local candidate npm_bin
  if [[ -n "${npm_config_node_gyp:-}" && -f "${npm_config_node_gyp}" ]]; then
    echo "node ${npm_config_node_gyp}"; return 0
  fi
  if [[ -x "$REPO_ROOT/node_modules/.bin/node-gyp" ]]; then
    echo "$REPO_ROOT/node_modules/.bin/node-gyp"; return 0
  fi
  if candidate="$(command -v node-gyp 2>/dev/null)"; then
    echo "$candidate"; return 0
  fi
  if npm_bin="$(command -v npm 2>/dev/null)"; then
    candidate="$(dirname "$(readlink -f "$npm_bin")")/../node_modules/node-gyp/bin/node-gyp.js"
    if [[ -f "$candidate" ]]; then echo "node $(readlink -f "$candidate")"; return 0; fi
  fi
  return 1
}

# Local headers: the configured nodedir, else the running node's own prefix
# when it ships include/node (distribution packages do).
find_nodedir() {
  local dir prefix
  dir="${npm_config_nodedir:-}"
  if [[ -z "$dir" ]]; then
    dir="$(npm config get nodedir 2>/dev/null || true)"
    [[ "$dir" == "undefined" || "$dir" == "null" ]] && dir=""
  fi
  if [[ -n "$dir" && -f "$dir/include/node/node_api.h" ]]; then echo "$dir"; return 0; fi
  prefix="$(node -p 'require("path").resolve(process.execPath, "..", "..")' 2>/dev/null)" || return 1
  if [[ -f "$prefix/include/node/node_api.h" ]]; then echo "$prefix"; return 0; fi
  return 1
}

command -v node >/dev/null 2>&1 || warn "node not found on PATH"
NODE_GYP="$(find_node_gyp)" || warn "node-gyp not found"
NODEDIR_ARGS=()
if NODEDIR="$(find_nodedir)"; then
  NODEDIR_ARGS=(--nodedir="$NODEDIR")
else
  echo "no local Node headers found; node-gyp will try to download them" >>"$LOG"
fi

echo "+ $NODE_GYP rebuild --directory=$NATIVE_DIR ${NODEDIR_ARGS[*]} --jobs=max" >>"$LOG"
# shellcheck disable=SC2086  # NODE_GYP may be "node /path/node-gyp.js"
if ! $NODE_GYP rebuild --directory="$NATIVE_DIR" "${NODEDIR_ARGS[@]}" --jobs=max >>"$LOG" 2>&1; then
  warn "node-gyp failed"
fi
[[ -f "$ADDON" ]] || warn "node-gyp reported success but ${ADDON#"$REPO_ROOT"/} is missing"

# Prove the result loads in this node (ABI, missing symbols) before saying so.
if ! node -e 'require(process.argv[1])' "$ADDON" >>"$LOG" 2>&1; then
  warn "built addon does not load"
fi
echo "jumper: native addon built: ${ADDON#"$REPO_ROOT"/}"
