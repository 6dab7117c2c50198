#!/bin/sh
# Kafka's own console consumer on DataHub's query events, without a Kafka distribution:
# the kafka-tools jars come from Maven Central once (as the stack's Kafka does) into
# ~/.cache/datahub/kafka-tools-4.4.0/libs. Arguments go to the console consumer:
#
#   examples/kafka-console-consumer.sh --bootstrap-server localhost:9092 \
#       --topic datahub.query-events --from-beginning --property print.key=true
#
# With Kafka's distribution installed, bin/kafka-console-consumer.sh takes the same
# arguments.
set -eu
VERSION=4.4.0
LIBS="${KAFKA_TOOLS_LIBS:-$HOME/.cache/datahub/kafka-tools-$VERSION/libs}"
PYTHON="${PYTHON:-python3}"
if [ ! -e "$LIBS/kafka-tools-$VERSION.jar" ]; then
    echo "Fetching Kafka's tools $VERSION from Maven Central (once) into $LIBS" >&2
    "$PYTHON" -c 'import sys; from pathlib import Path; from datahub.stack.maven import copy_dependencies; copy_dependencies(["org.apache.kafka:kafka-tools:" + sys.argv[1]], Path(sys.argv[2]))' "$VERSION" "$LIBS" >&2
fi
exec java -cp "$LIBS/*" org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
