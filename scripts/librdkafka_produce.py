#!/usr/bin/env python3
"""Produce N records of SIZE bytes with confluent-kafka (librdkafka) and print records/s.

    librdkafka_produce.py BOOTSTRAP TOPIC N SIZE PARTITIONS

Records carry no key and are spread over the partitions the way the Rill bench does; acks=1,
linger.ms=5, batch.size=256 KiB (the Rill bench's batch), no compression. The Python call per
record is part of what is measured: that is how confluent-kafka is used.
"""

import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, topic, n, size, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (f,) = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values()
    f.result(30)
    p = Producer({
        "bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "batch.size": 262144,
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151,
    })
    value = b"v" * size
    start = time.monotonic()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.001)
    left = p.flush(120)
    secs = time.monotonic() - start
    if left:
        sys.exit(f"{left} records not delivered")
    print(f"librdkafka produce: {n} records of {size} B over {partitions} partition(s), acks=1: "
          f"{n / secs:.0f} records/s, {n * size / secs / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
