#!/bin/sh
# kafka-run-class.sh CLASS [ARGS]: runs a Kafka class on the image's jars
# with a small heap (the tools' default in the official scripts), quiet logs.
cls="$1"
shift
# shellcheck disable=SC2086 # KAFKA_OPTS is a word list
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 ${KAFKA_OPTS:-} \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp '/opt/kafka/libs/*' "$cls" "$@"
