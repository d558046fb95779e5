#!/usr/bin/env python3
"""librdkafka's Java-compatible partitioner against a rill broker.

    partitioner.py BOOTSTRAP TOPIC KEYS

A confluent-kafka producer with partitioner=murmur2_random (librdkafka's equivalent of the Java
client's default partitioner for keyed records) sends one record per key k0 .. k{KEYS-1} to
TOPIC, which must exist. Prints one line `KEY PARTITION` per key from the delivery reports, so
the caller can compare them with what it reads back and with the Rill producer's choices.

Exits non-zero on any delivery error.
"""

import sys

try:
    from confluent_kafka import Producer
except ImportError as e:  # never skip silently: the test must fail with the reason
    sys.exit(f"confluent-kafka is not installed ({e}); install it with `pip install confluent-kafka` (.ci/run does)")

from checks import check, fail  # noqa: E402 (beside this script)

TIMEOUT = 30.0


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bootstrap, topic, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": False,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(TIMEOUT * 1000),
        }
    )
    placed = {}

    def report(err, msg):
        if err is not None:
            fail(f"delivery of {msg.key()!r} failed: {err}")
        placed[msg.key().decode()] = msg.partition()

    for i in range(keys):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=report)
        producer.poll(0)
    left = producer.flush(TIMEOUT)
    check(left == 0, f"{left} records still undelivered after {TIMEOUT} s")
    check(len(placed) == keys, f"{len(placed)} delivery reports for {keys} keys")
    for i in range(keys):
        print(f"k{i} {placed[f'k{i}']}")


if __name__ == "__main__":
    main()
