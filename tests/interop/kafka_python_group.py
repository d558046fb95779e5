#!/usr/bin/env python3
"""kafka-python consumers in one group against a rill broker.

    kafka_python_group.py BOOTSTRAP TOPIC GROUP

1,200 records to a 4-partition topic; two kafka-python consumers in GROUP (subscribe, manual
commits) share it: every record is consumed exactly once across them, each of them gets some,
and after they leave every partition's committed offset is its end offset.
"""

import sys
import threading
import time

try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
except ImportError as e:
    sys.exit(f"kafka-python is not installed ({e}); install it with `pip install kafka-python` (.ci/run does)")

from checks import check  # noqa: E402 (beside this script)

PARTITIONS = 4
RECORDS = 1200
TIMEOUT = 60


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bootstrap, topic, group = sys.argv[1:]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    for i in range(RECORDS):
        producer.send(topic, key=f"k{i}".encode(), value=f"r{i}".encode(), partition=i % PARTITIONS)
    producer.flush(TIMEOUT)
    producer.close()

    seen, lock, stop = [], threading.Lock(), threading.Event()

    def member(name):
        c = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=500,
        )
        while not stop.is_set():
            for _tp, msgs in c.poll(timeout_ms=200).items():
                with lock:
                    seen.extend((m.value.decode(), name) for m in msgs)
            c.commit()
        c.close()

    threads = [threading.Thread(target=member, args=(f"kp{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    while True:
        with lock:
            distinct = len({v for v, _ in seen})
        if distinct >= RECORDS:
            break
        check(time.monotonic() < deadline, f"read {distinct} of {RECORDS} records in {TIMEOUT} s")
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    values = [v for v, _ in seen]
    check(len(values) == len(set(values)) == RECORDS, f"{len(values)} reads of {len(set(values))} records")
    names = {n for _, n in seen}
    print(f"kafka-python group: {RECORDS} records consumed once each by {sorted(names)}")

    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = probe.end_offsets(tps)
    committed = {tp.partition: probe.committed(tp) for tp in tps}
    probe.close()
    check(all(committed[tp.partition] == ends[tp] for tp in tps), f"committed {committed} != ends {ends}")
    print(f"committed offsets equal end offsets: {committed}")


if __name__ == "__main__":
    main()
