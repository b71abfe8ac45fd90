#!/usr/bin/env bash
# Build the jumper LD_PRELOAD hand-off shim (native/preload/libjumper_preload.so).
# Exits 0 with a warning when gcc is unavailable (the shim is optional).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v gcc >/dev/null 2>&1; then
  echo "warning: gcc not found; skipping build of native/preload/libjumper_preload.so" >&2
  exit 0
fi
gcc -shared -fPIC -O2 -Wall -Wextra -D_GNU_SOURCE -fstack-protector-strong \
  -o native/preload/libjumper_preload.so native/preload/jumper_preload.c -ldl
