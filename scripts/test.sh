#!/usr/bin/env bash
# test.sh: quick start 2, and what CI runs. Installs what is missing (Debian
# packages; Maven fetches the Kafka broker for the real-broker tier), builds
# with AddressSanitizer + UndefinedBehaviorSanitizer and -Werror, and runs
# every tier through ctest: unit, integration (mock cluster + sandbox), e2e
# (a real Apache Kafka broker), fuzz (libFuzzer, bounded time) and docker
# (the compose files checked, then the stack built and run with Debian's
# dockerd: tests/docker/test_stack.py installs and starts it as root).
# Exits non-zero on any failure.
#   scripts/test.sh [ctest args...]     e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

# promtool to lint /metrics; for the other tiers clang + its runtime for the
# fuzz targets, Java and Maven for the broker, venv and PyYAML for the
# chart's checks (checkov from PyPI; Helm from the Go module proxy with the
# machine's Go). `-L unit` alone needs only the first.
if [ "$*" = "-L unit" ]; then
  extra="prometheus" fuzz=OFF
else
  extra="clang libclang-rt-14-dev prometheus python3-venv python3-yaml openssl" fuzz=ON
  command -v java >/dev/null 2>&1 || extra="$extra openjdk-17-jre-headless"
  command -v mvn >/dev/null 2>&1 || extra="$extra maven"
fi
LB_EXTRA_PKGS="$extra" LB_DEPS_ONLY=1 scripts/deps.sh
# The whole suite (no ctest arguments): the chart's tools, which a machine
# without their cache builds and installs for minutes (Helm with Go on both
# cores), are made beside the C build rather than among the parallel tests'
# deadlines. Their failure is the kubernetes test's to report (it tries
# again, then fails under CI=true or skips).
tools=""
if [ $# -eq 0 ]; then
  python3 tests/kubernetes/test_chart.py --setup >&2 &
  tools=$!
fi
LB_EXTRA_PKGS="$extra" scripts/deps.sh build-test -DCMAKE_BUILD_TYPE=Debug \
  -DLEANBRIDGE_SANITIZE=ON -DLEANBRIDGE_FUZZ=$fuzz
if [ -n "$tools" ]; then
  wait "$tools" || echo "test.sh: the chart's tools are not ready (kubernetes.test_chart will say why)" >&2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd build-test
# In parallel, 10 slots per core: tests/CMakeLists.txt ("Parallel runs")
# gives each test its share (PROCESSORS) and keeps apart what must not
# overlap. A -j among the arguments wins.
ctest --output-on-failure --timeout 900 -j "$((10 * $(nproc)))" "$@"
