#!/usr/bin/env bash
# demo.sh: quick start 1. Installs what is missing, builds, then runs the
# main job on an embedded default (mock Kafka + sandbox API + sample events +
# the bridge) and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build -DCMAKE_BUILD_TYPE=Release
LB_BUILD_DIR="$PWD/build" exec python3 scripts/demo.py
