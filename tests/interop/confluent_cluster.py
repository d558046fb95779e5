#!/usr/bin/env python3
"""confluent-kafka (librdkafka) producing to a rill cluster while the test kills the leader.

    confluent_cluster.py BOOTSTRAP TOPIC COUNT

Produces COUNT records (values `c-000000` ...) with acks=all and idempotence, round-robin over
the topic's partitions, polling as it goes. Every delivery report is printed on stdout as
`acked VALUE PARTITION OFFSET` or `failed VALUE ERROR`, flushed at once, so the Rust side can
kill the partition leader part-way and later check that every acknowledged record is stored
exactly once, at the offset reported. Exits non-zero if the final flush leaves records
undelivered.
"""

import sys

try:
    from confluent_kafka import Producer
except ImportError as e:
    sys.exit(f"confluent-kafka is not installed ({e}); install it with `pip install confluent-kafka` (.ci/run does)")

from checks import check  # noqa: E402 (beside this script)


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "retry.backoff.ms": 50,
            "message.timeout.ms": 120000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    partitions = len(producer.list_topics(topic, timeout=30).topics[topic].partitions)
    check(partitions > 0, f"{topic} has no partitions")

    def report(err, msg):
        value = msg.value().decode()
        if err is None:
            print(f"acked {value} {msg.partition()} {msg.offset()}", flush=True)
        else:
            print(f"failed {value} {err}", flush=True)

    for i in range(count):
        value = f"c-{i:06d}"
        while True:
            try:
                producer.produce(topic, value=value.encode(), partition=i % partitions, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    check(left == 0, f"{left} records still undelivered after 120 s")


if __name__ == "__main__":
    main()
