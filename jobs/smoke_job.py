"""A small bounded job that proves a Flink deployment can run this project's Python code.

It turns the numbers 0 to N-1 into JSON records and writes them to a Kafka topic, which covers
the Python workers, the project's packages on their path and the Kafka connector jar.

    python -m jobs.smoke_job --topic smoke --count 100          # local mini-cluster
    scripts/submit.sh jobs/smoke_job.py --topic smoke --count 100  # standalone cluster
"""

import argparse
import json
import logging

from pyflink.common import Types
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

from jobs import settings
from jobs.flink_setup import create_environment


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description="Write N JSON records to a Kafka topic.")
    parser.add_argument("--topic", required=True, help="topic to write to")
    parser.add_argument("--count", type=int, default=100, help="records to write")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    env = create_environment()

    records = env.from_collection(list(range(args.count)), type_info=Types.INT())
    as_json = records.map(
        lambda number: json.dumps({"sequence": number, "square": number * number}),
        output_type=Types.STRING(),
    ).name("to JSON")
    as_json.sink_to(
        KafkaSink.builder()
        .set_bootstrap_servers(settings.KAFKA_BOOTSTRAP_SERVERS)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(args.topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    ).name("Kafka smoke sink")

    env.execute("frauddrift smoke")


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    main()
