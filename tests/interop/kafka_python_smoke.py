#!/usr/bin/env python3
"""kafka-python against a rill broker.

    kafka_python_smoke.py BOOTSTRAP TOPIC [COMPRESSION]

A producer (api_version auto-detected, idempotence off, COMPRESSION: gzip by default; lz4 needs
the `lz4` package) sends 1,000 keyed records with headers;
the topic is auto-created by the metadata request. A consumer without a group (group_id=None)
assigns every partition, seeks to the beginning and must read back, per partition, exactly the
records the producer's acknowledgements placed there, at those offsets and in that order.

Prints a summary; exits non-zero on any mismatch or error.
"""

import logging
import sys
import time

try:
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
except ImportError as e:  # never skip silently: the test must fail with the reason
    sys.exit(f"kafka-python is not installed ({e}); install it with `pip install kafka-python` (.ci/run does)")

from checks import check, fail  # noqa: E402 (beside this script)

RECORDS = 1000
TIMEOUT = 30


def make_producer(bootstrap, compression):
    """A producer whose version probe is logged, so a failed auto-detection says what it tried."""
    log = logging.getLogger("kafka")
    log.setLevel(logging.DEBUG)
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(f"{r.name}: {r.getMessage()}")
    log.addHandler(handler)
    config = {"bootstrap_servers": bootstrap, "acks": "all", "retries": 0, "linger_ms": 5, "compression_type": compression}
    if "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG:
        config["enable_idempotence"] = False
    try:
        producer = KafkaProducer(**config)
    except Exception as e:
        probe = [r for r in records if "version" in r.lower() or "ApiVersion" in r]
        fail(
            f"KafkaProducer with api_version auto-detection failed: {type(e).__name__}: {e}\n"
            + "version probe log:\n  "
            + "\n  ".join(probe[-40:] or records[-40:])
        )
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.WARNING)
    return producer


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    compression = sys.argv[3] if len(sys.argv) == 4 else "gzip"
    started = time.monotonic()
    producer = make_producer(bootstrap, compression)
    detected = producer.config.get("api_version")
    print(f"kafka-python {kafka.__version__}: api_version auto-detected as {detected}")
    # Record batches (magic v2) need 0.11 or later; an older guess would send message sets.
    check(isinstance(detected, tuple) and detected >= (0, 11), f"api_version detected as {detected}, expected >= (0, 11)")

    sent = []
    futures = []
    for i in range(RECORDS):
        key = f"key-{i % 97}".encode()  # repeated keys: same key, same partition
        value = f"value-{i}-".encode() * (1 + i % 13)
        headers = [("i", str(i).encode()), ("kind", b"smoke")]
        futures.append(producer.send(topic, key=key, value=value, headers=headers))
        sent.append((key, value, headers))
    producer.flush(timeout=TIMEOUT)
    placed = {}  # partition -> [(offset, key, value, headers)]
    key_partition = {}
    for (key, value, headers), f in zip(sent, futures):
        try:
            md = f.get(timeout=TIMEOUT)
        except Exception as e:
            fail(f"send of {key!r} failed: {type(e).__name__}: {e}")
        check(key_partition.setdefault(key, md.partition) == md.partition, f"{key!r} went to two partitions")
        placed.setdefault(md.partition, []).append((md.offset, key, value, headers))
    producer.close(timeout=TIMEOUT)
    for p, recs in placed.items():
        offsets = [r[0] for r in recs]
        check(offsets == list(range(len(recs))), f"partition {p}: acknowledged offsets {offsets[:10]}... not 0..{len(recs)}")
    print(f"produced {RECORDS} records to {topic}, partitions {{p: n}} = {{{', '.join(f'{p}: {len(r)}' for p, r in sorted(placed.items()))}}}")

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    partitions = consumer.partitions_for_topic(topic)
    check(partitions, f"no partitions for {topic}")
    check(set(placed) <= partitions, f"records placed in {sorted(placed)}, topic has {sorted(partitions)}")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    got = {p: [] for p in partitions}
    deadline = time.monotonic() + TIMEOUT
    while sum(len(v) for v in got.values()) < RECORDS:
        check(time.monotonic() < deadline, f"read {sum(len(v) for v in got.values())} of {RECORDS} records in {TIMEOUT} s")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            got[tp.partition].extend(msgs)
    end = consumer.end_offsets(tps)
    consumer.close()

    for p in sorted(partitions):
        want = placed.get(p, [])
        msgs = got[p]
        check(len(msgs) == len(want), f"partition {p}: read {len(msgs)} records, produced {len(want)}")
        check(end[TopicPartition(topic, p)] == len(want), f"partition {p}: end offset {end[TopicPartition(topic, p)]}, expected {len(want)}")
        for m, (offset, key, value, headers) in zip(msgs, want):
            where = f"partition {p} offset {offset}"
            check(m.offset == offset, f"{where}: read offset {m.offset}")
            check(m.key == key, f"{where}: key {m.key!r}, expected {key!r}")
            check(m.value == value, f"{where}: value {m.value[:40]!r}..., expected {value[:40]!r}...")
            check(list(m.headers) == headers, f"{where}: headers {m.headers!r}, expected {headers!r}")
    print(f"ok: {RECORDS} records read back identically over {len(partitions)} partitions in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
