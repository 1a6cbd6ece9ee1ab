#!/bin/bash
# Starts Kafka the way the official apache/kafka image does: Kafka's own docker wrapper
# (kafka.docker.KafkaDockerWrapper, part of the broker jar) turns KAFKA_* variables into
# /opt/kafka/config/server.properties (defaults: /etc/kafka/docker; files mounted into
# /mnt/shared/config win) and formats the storage on the first start; then the broker runs in
# the foreground as PID 1, so `docker stop` shuts it down cleanly.
set -euo pipefail
export CLUSTER_ID=${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}
CLASSPATH='/opt/kafka/libs/*'
# On a restart (the container's or its volume's storage is formatted already) the wrapper
# writes the configuration, then fails the format step with "already formatted": that is fine.
if ! out=$(java -Xmx256m -cp "$CLASSPATH" -Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.yaml \
    kafka.docker.KafkaDockerWrapper setup \
    --default-configs-dir /etc/kafka/docker \
    --mounted-configs-dir /mnt/shared/config \
    --final-configs-dir /opt/kafka/config 2>&1); then
    echo "$out"
    case "$out" in
        *"is already formatted"*) echo "run.sh: storage formatted by an earlier start; starting the broker" ;;
        *) echo "run.sh: configuring Kafka failed (above)" >&2; exit 1 ;;
    esac
else
    echo "$out"
fi
# shellcheck disable=SC2086 - the option variables hold several words on purpose
exec java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true} \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml \
    ${KAFKA_OPTS:-} \
    -cp "$CLASSPATH" kafka.Kafka /opt/kafka/config/server.properties
