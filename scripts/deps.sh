#!/usr/bin/env bash
# deps.sh: installs the Debian packages leanbridge builds and tests with,
# only those missing, then configures and builds into the directory given
# (default build/) with any extra CMake arguments. LB_DEPS_ONLY=1: the
# packages only, no build.
#   scripts/deps.sh [BUILD_DIR] [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config python3 librdkafka-dev libcurl4-openssl-dev
      libjansson-dev libcmocka-dev libmicrohttpd-dev kcat)
[ -n "${LB_EXTRA_PKGS:-}" ] && PKGS+=(${LB_EXTRA_PKGS})

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${LB_DEPS_ONLY:-}" = 1 ] && exit 0

BUILD_DIR="${1:-build}"
shift || true
cmake -S . -B "$BUILD_DIR" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
