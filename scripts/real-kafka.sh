#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, single node, 127.0.0.1) for tests and demos.
#
#   scripts/real-kafka.sh fetch [--version V]   fetch + cache the jars (Maven Central)
#   scripts/real-kafka.sh start [--version V] [--topic NAME:PARTS]...
#                                               print BOOTSTRAP=..., run until SIGTERM
#   scripts/real-kafka.sh smoke [--version V]   librdkafka (kcat) vs a fresh broker
#   scripts/real-kafka.sh reason [--version V]  why a broker can't run here (exit 1)
#
# Installs what is missing first (Debian: a Java 17 runtime, maven, kcat).
# The default version is in tests/kafka/kafka_broker.py (DEFAULT_VERSION);
# LEANBRIDGE_KAFKA_VERSION overrides it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "real-kafka: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >&2
  else
    echo "real-kafka: missing ${need[*]} (install them, or run as root on Debian)" >&2
    exit 3
  fi
fi

exec python3 "$root/tests/kafka/kafka_broker.py" "$@"
