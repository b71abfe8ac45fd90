#!/usr/bin/env bash
# Install the rival proxies the benchmark compares jumper with, if missing.
# Idempotent; only acts as root with apt-get available, otherwise prints what
# is missing (bench/run.ts then skips those systems with a notice).
#   spiped      spiped -e / spiped -d pair
#   stunnel4    stunnel TLS 1.3 pair (openssl makes its throwaway certificate)
#   socat       plain forwarder
#   systemd     systemd-socket-activate + systemd-socket-proxyd (usually present)
set -euo pipefail

declare -A binary_of=(
  [spiped]=spiped
  [stunnel4]=stunnel4
  [socat]=socat
  [openssl]=openssl
)
missing=()
for pkg in "${!binary_of[@]}"; do
  command -v "${binary_of[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "bench: rivals present (spiped, stunnel4, socat, openssl)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bench: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } \
    || echo "bench: could not install ${missing[*]}; those systems will be skipped"
else
  echo "bench: missing ${missing[*]} (not root or no apt-get); those systems will be skipped"
fi
