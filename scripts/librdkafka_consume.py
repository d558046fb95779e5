#!/usr/bin/env python3
"""Produce N records of SIZE bytes (not timed), then read them back with confluent-kafka
(librdkafka) from the beginning, assigned, no group, and print records/s.

    librdkafka_consume.py BOOTSTRAP TOPIC N SIZE PARTITIONS

Records are taken with `consume(num_messages=10000)`, so Python's per-record cost is one list
element, not one call.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, topic, n, size, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (f,) = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values()
    f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 262144,
                  "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151})
    value = b"v" * size
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.001)
    if p.flush(120):
        sys.exit("records not delivered")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "librdkafka-bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 67108864, "max.partition.fetch.bytes": 8388608,
                  "queued.max.messages.kbytes": 1048576})
    start = time.monotonic()
    c.assign([TopicPartition(topic, q, OFFSET_BEGINNING) for q in range(partitions)])
    got = 0
    while got < n:
        got += sum(1 for m in c.consume(num_messages=10000, timeout=1.0) if not m.error())
    secs = time.monotonic() - start
    c.close()
    print(f"librdkafka consume: {n} records of {size} B over {partitions} partition(s): "
          f"{n / secs:.0f} records/s, {n * size / secs / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
