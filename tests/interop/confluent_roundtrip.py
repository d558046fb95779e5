#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a rill broker.

    confluent_roundtrip.py BOOTSTRAP produce SEED BASE_TS   create topics, produce, verify, admin
    confluent_roundtrip.py BOOTSTRAP verify  SEED BASE_TS   verify the same data is still there

100,000 records keyed k{i}, with headers and explicit timestamps, go to five topics of six
partitions each; record i goes through producer i % 5, each producer using one compression codec
(none, gzip, snappy, lz4, zstd) for its own topic, to partition (i // 5) % 6. The data is a pure
function of SEED and BASE_TS, so verify mode rebuilds the expectation without producing.

Consumers do not join a group: every partition is assigned explicitly from the beginning, and
nothing is committed (the broker has no group coordinator yet).

Prints a summary; exits non-zero on the first mismatch or error.
"""

import logging
import random
import sys
import time

try:
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        Producer,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    import confluent_kafka
except ImportError as e:  # never skip silently: the test must fail with the reason
    sys.exit(f"confluent-kafka is not installed ({e}); install it with `pip install confluent-kafka` (.ci/run does)")

RECORDS = 100_000
PARTITIONS = 6
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
from checks import check, fail  # noqa: E402 (beside this script)

ADMIN_TOPIC = "cf-admin"
TIMEOUT = 30.0


def topic_of(codec):
    return f"cf-{codec}"


def expected_data(seed, base_ts):
    """{(topic, partition): [(key, value, headers, timestamp)]} in production order."""
    rng = random.Random(seed)
    out = {(topic_of(c), p): [] for c in CODECS for p in range(PARTITIONS)}
    for i in range(RECORDS):
        codec = CODECS[i % len(CODECS)]
        partition = (i // len(CODECS)) % PARTITIONS
        roll = rng.randrange(1000)
        if roll == 0:
            value = None  # a null value
        elif roll == 1:
            value = b""
        elif roll < 20:
            value = rng.randbytes(rng.randrange(2_000, 40_000))  # incompressible, multi-KB
        else:
            # Compressible text with a random binary tail (NUL, newlines and all).
            value = (f"value-{i}-" * rng.randrange(1, 20)).encode() + rng.randbytes(rng.randrange(0, 40))
        headers = [("i", str(i).encode()), ("codec", codec.encode())]
        if i % 7 == 0:
            headers.append(("dup", b"1"))
            headers.append(("dup", b"2"))
        if i % 11 == 0:
            headers.append(("null", None))
        out[(topic_of(codec), partition)].append((f"k{i}".encode(), value, headers, base_ts + i))
    return out


def create_data_topics(admin):
    futures = admin.create_topics(
        [NewTopic(topic_of(c), num_partitions=PARTITIONS, replication_factor=1) for c in CODECS],
        operation_timeout=TIMEOUT,
    )
    for topic, f in futures.items():
        try:
            f.result(timeout=TIMEOUT)
        except KafkaException as e:
            fail(f"create_topics {topic}: {e}")


def produce(bootstrap, expected):
    errors = []
    delivered = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()} [{msg.partition()}]: {err}")
        else:
            delivered[0] += 1

    producers = {
        c: Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": c,
                "enable.idempotence": False,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60_000,
            }
        )
        for c in CODECS
    }
    # Interleave the producers record by record, as the cycling of i % 5 describes.
    cursors = {k: 0 for k in expected}
    for i in range(RECORDS):
        codec = CODECS[i % len(CODECS)]
        partition = (i // len(CODECS)) % PARTITIONS
        key = (topic_of(codec), partition)
        k, v, h, ts = expected[key][cursors[key]]
        cursors[key] += 1
        p = producers[codec]
        while True:
            try:
                p.produce(key[0], key=k, value=v, headers=h, partition=partition, timestamp=ts, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        if i % 1000 == 0:
            p.poll(0)
    for c, p in producers.items():
        left = p.flush(60)
        check(left == 0, f"producer {c}: {left} records still undelivered after 60 s")
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:5]}")
    check(delivered[0] == RECORDS, f"{delivered[0]} delivery reports for {RECORDS} records")


def new_consumer(bootstrap):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by the client; never used: no subscribe, no commit.
            "group.id": "rill-interop-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }
    )


def consume_and_verify(bootstrap, expected, phase):
    consumer = new_consumer(bootstrap)
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in expected])
    got = {k: [] for k in expected}
    at_eof = set()
    deadline = time.monotonic() + 60
    while len(at_eof) < len(expected):
        check(time.monotonic() < deadline, f"{phase}: partitions {sorted(set(expected) - at_eof)} not at end after 60 s")
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            key = (msg.topic(), msg.partition())
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    n, want = len(got[key]), len(expected[key])
                    check(n == want, f"{phase}: {key[0]} [{key[1]}] ended after {n} records, produced {want}")
                    at_eof.add(key)
                    continue
                fail(f"{phase}: consumer error on {key}: {err}")
            got[key].append(msg)
    consumer.close()

    for key, want in expected.items():
        msgs = got[key]
        check(len(msgs) == len(want), f"{phase}: {key}: read {len(msgs)} records, produced {len(want)}")
        for offset, (msg, (k, v, h, ts)) in enumerate(zip(msgs, want)):
            where = f"{phase}: {key[0]} [{key[1]}] offset {offset}"
            check(msg.offset() == offset, f"{where}: got offset {msg.offset()} (offsets must be contiguous from 0)")
            check(msg.key() == k, f"{where}: key {msg.key()!r}, expected {k!r}")
            check(msg.value() == v, f"{where} ({k!r}): value differs ({_short(msg.value())} vs {_short(v)})")
            check((msg.headers() or []) == h, f"{where} ({k!r}): headers {msg.headers()!r}, expected {h!r}")
            check(msg.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, ts), f"{where}: timestamp {msg.timestamp()}, expected {ts}")
    counts = {t: sum(len(v) for (tt, _), v in got.items() if tt == t) for t in sorted({t for t, _ in got})}
    print(f"{phase}: {sum(counts.values())} records identical and in order over {len(expected)} partitions: {counts}")


def _short(v):
    return "null" if v is None else f"{len(v)} bytes {v[:24]!r}"


def check_offsets(bootstrap, expected):
    """Watermarks, offsets_for_times and (where the client has it) AdminClient.list_offsets."""
    consumer = new_consumer(bootstrap)
    for (t, p), recs in expected.items():
        lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)
        check((lo, hi) == (0, len(recs)), f"watermarks of {t} [{p}]: {(lo, hi)}, expected (0, {len(recs)})")
    # offsets_for_times: an exact timestamp, one between two records, and one past the end; one
    # query per partition per request (a partition may appear only once in a ListOffsets request).
    for name, pick in [
        ("exact", lambda recs, j: (recs[j][3], j)),
        ("between", lambda recs, j: (recs[j][3] + 1, j + 1)),
        ("past the end", lambda recs, j: (recs[-1][3] + 1, -1)),
    ]:
        queries, answers = [], []
        for (t, p), recs in expected.items():
            ts, want = pick(recs, len(recs) // 3)
            queries.append(TopicPartition(t, p, ts))
            answers.append(want)
        got = consumer.offsets_for_times(queries, timeout=TIMEOUT)
        for q, g, want in zip(queries, got, answers):
            where = f"offsets_for_times ({name}) {q.topic} [{q.partition}] @{q.offset}"
            check((g.topic, g.partition) == (q.topic, q.partition), f"{where}: answer for {g.topic} [{g.partition}]")
            check(g.error is None, f"{where}: {g.error}")
            check(g.offset == want, f"{where}: {g.offset}, expected {want}")
    consumer.close()
    print(f"watermarks and offsets_for_times agree on {len(expected)} partitions")

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if not hasattr(admin, "list_offsets"):
        print(f"AdminClient.list_offsets: not in confluent-kafka {confluent_kafka.version()}; skipped")
        return
    from confluent_kafka.admin import OffsetSpec

    for spec_name, spec, want in [
        ("earliest", OffsetSpec.earliest(), lambda recs: (0, None)),
        ("latest", OffsetSpec.latest(), lambda recs: (len(recs), None)),
        ("max_timestamp", OffsetSpec.max_timestamp(), lambda recs: (len(recs) - 1, recs[-1][3])),
        ("for_timestamp", OffsetSpec.for_timestamp(list(expected.values())[0][0][3]), None),
    ]:
        req = {TopicPartition(t, p): spec for (t, p) in expected}
        for tp, f in admin.list_offsets(req, request_timeout=TIMEOUT).items():
            r = f.result(timeout=TIMEOUT)
            recs = expected[(tp.topic, tp.partition)]
            if want is None:
                # for_timestamp(t0), t0 = the first record's timestamp of the first partition: every
                # partition's records are later, so the answer is its first offset, 0.
                check(r.offset == 0, f"list_offsets {spec_name} {tp.topic} [{tp.partition}]: {r.offset}, expected 0")
                continue
            off, ts = want(recs)
            check(r.offset == off, f"list_offsets {spec_name} {tp.topic} [{tp.partition}]: offset {r.offset}, expected {off}")
            if ts is not None:
                check(r.timestamp == ts, f"list_offsets {spec_name} {tp.topic} [{tp.partition}]: timestamp {r.timestamp}, expected {ts}")
    print(f"AdminClient.list_offsets earliest/latest/max_timestamp/for_timestamp agree on {len(expected)} partitions")


def describe_topic_configs(admin, topic):
    res = ConfigResource("topic", topic)
    (f,) = admin.describe_configs([res], request_timeout=TIMEOUT).values()
    return f.result(timeout=TIMEOUT)


def check_admin(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "compact", "retention.ms": "3600000", "segment.bytes": "1048576"}
    (f,) = admin.create_topics(
        [NewTopic(ADMIN_TOPIC, num_partitions=3, replication_factor=1, config=configs)], operation_timeout=TIMEOUT
    ).values()
    f.result(timeout=TIMEOUT)
    md = admin.list_topics(timeout=TIMEOUT)
    check(ADMIN_TOPIC in md.topics, f"{ADMIN_TOPIC} not listed after create_topics")
    check(len(md.topics[ADMIN_TOPIC].partitions) == 3, f"{ADMIN_TOPIC}: {len(md.topics[ADMIN_TOPIC].partitions)} partitions")

    # Creating it again fails with TOPIC_ALREADY_EXISTS.
    (f,) = admin.create_topics([NewTopic(ADMIN_TOPIC, num_partitions=1, replication_factor=1)]).values()
    try:
        f.result(timeout=TIMEOUT)
        fail("create_topics of an existing topic succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"create_topics of an existing topic: {e}")

    # describe_configs: the overrides, with their source, and real defaults for the rest.
    entries = describe_topic_configs(admin, ADMIN_TOPIC)
    for name, value in configs.items():
        check(name in entries, f"describe_configs {ADMIN_TOPIC}: {name} missing (got {sorted(entries)})")
        e = entries[name]
        check(e.value == value, f"describe_configs {ADMIN_TOPIC}: {name}={e.value!r}, expected {value!r}")
        source = getattr(e.source, "value", e.source)
        check(
            source == confluent_kafka.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
            f"describe_configs {ADMIN_TOPIC}: {name} source {e.source}, expected DYNAMIC_TOPIC_CONFIG",
        )
    defaults = describe_topic_configs(admin, topic_of("none"))
    for name in ["cleanup.policy", "retention.ms", "segment.bytes", "retention.bytes", "max.message.bytes"]:
        check(name in defaults and defaults[name].value not in (None, ""), f"describe_configs default {name}: {defaults.get(name)}")
    check(defaults["cleanup.policy"].value == "delete", f"default cleanup.policy {defaults['cleanup.policy'].value!r}")
    check(int(defaults["retention.ms"].value) > 0 or defaults["retention.ms"].value == "-1", "default retention.ms")
    check(int(defaults["segment.bytes"].value) > 0, f"default segment.bytes {defaults['segment.bytes'].value!r}")
    print(
        "describe_configs: overrides "
        + ", ".join(f"{n}={entries[n].value}" for n in configs)
        + "; defaults "
        + ", ".join(f"{n}={defaults[n].value}" for n in ["cleanup.policy", "retention.ms", "segment.bytes"])
    )

    # incremental_alter_configs, where the client has it.
    if hasattr(admin, "incremental_alter_configs"):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

        res = ConfigResource(
            "topic",
            ADMIN_TOPIC,
            incremental_configs=[ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)],
        )
        (f,) = admin.incremental_alter_configs([res]).values()
        f.result(timeout=TIMEOUT)
        value = describe_topic_configs(admin, ADMIN_TOPIC)["retention.ms"].value
        check(value == "7200000", f"retention.ms after incremental_alter_configs: {value!r}")
        print("incremental_alter_configs: retention.ms=7200000")

    # create_partitions: 3 -> 5.
    (f,) = admin.create_partitions([NewPartitions(ADMIN_TOPIC, 5)], operation_timeout=TIMEOUT).values()
    f.result(timeout=TIMEOUT)
    n = len(admin.list_topics(topic=ADMIN_TOPIC, timeout=TIMEOUT).topics[ADMIN_TOPIC].partitions)
    check(n == 5, f"{ADMIN_TOPIC}: {n} partitions after create_partitions(5)")

    # A new partition takes records.
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False})
    errors = []
    p.produce(ADMIN_TOPIC, key=b"k", value=b"v", partition=4, on_delivery=lambda err, _m: err and errors.append(err))
    check(p.flush(30) == 0 and not errors, f"produce to the new partition: {errors}")

    # delete_records, where the client has it. On a compact-only topic Kafka refuses it
    # (POLICY_VIOLATION); once the policy includes delete, the new partition's start moves past
    # its record.
    if hasattr(admin, "delete_records"):
        (f,) = admin.delete_records([TopicPartition(ADMIN_TOPIC, 4, 1)], request_timeout=TIMEOUT).values()
        try:
            f.result(timeout=TIMEOUT)
            fail("delete_records on a cleanup.policy=compact topic succeeded; expected POLICY_VIOLATION")
        except KafkaException as e:
            check(e.args[0].code() == KafkaError.POLICY_VIOLATION, f"delete_records on a compact topic: {e}")
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

        policy = ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET)
        (f,) = admin.incremental_alter_configs([ConfigResource("topic", ADMIN_TOPIC, incremental_configs=[policy])]).values()
        f.result(timeout=TIMEOUT)
        (f,) = admin.delete_records([TopicPartition(ADMIN_TOPIC, 4, 1)], request_timeout=TIMEOUT).values()
        r = f.result(timeout=TIMEOUT)
        check(r.low_watermark == 1, f"delete_records low watermark {r.low_watermark}, expected 1")
        c = new_consumer(bootstrap)
        marks = c.get_watermark_offsets(TopicPartition(ADMIN_TOPIC, 4), timeout=TIMEOUT)
        c.close()
        check(marks == (1, 1), f"watermarks after delete_records: {marks}, expected (1, 1)")
        print("delete_records: low watermark 1")

    # delete_topics: gone from the full listing (a by-name metadata request would recreate it).
    (f,) = admin.delete_topics([ADMIN_TOPIC], operation_timeout=TIMEOUT).values()
    f.result(timeout=TIMEOUT)
    check(ADMIN_TOPIC not in admin.list_topics(timeout=TIMEOUT).topics, f"{ADMIN_TOPIC} still listed after delete_topics")
    print("admin: create_topics with configs, describe_configs, create_partitions 3->5, delete_topics ok")


def lz4_feature(bootstrap):
    """Whether librdkafka enables lz4 against this broker. It gates lz4 on the broker serving
    FindCoordinator (a Kafka 0.10 marker) and otherwise sends lz4 batches uncompressed."""
    logs = []
    handler = logging.Handler()
    handler.emit = lambda r: logs.append(r.getMessage())
    logger = logging.getLogger("librdkafka-features")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    p = Producer({"bootstrap.servers": bootstrap, "debug": "feature", "logger": logger})
    p.list_topics(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while not any("feature LZ4" in m for m in logs):
        check(time.monotonic() < deadline, "librdkafka logged no LZ4 feature decision")
        p.poll(0.1)
    return any("Enabling feature LZ4" in m for m in logs)


def main():
    if len(sys.argv) != 5 or sys.argv[2] not in ("produce", "verify"):
        sys.exit(__doc__)
    bootstrap, mode, seed, base_ts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(f"confluent-kafka {confluent_kafka.version()}, librdkafka {confluent_kafka.libversion()[0]}, mode {mode}")
    started = time.monotonic()
    expected = expected_data(seed, base_ts)
    if mode == "produce":
        create_data_topics(AdminClient({"bootstrap.servers": bootstrap}))
        produce(bootstrap, expected)
        print(f"produced {RECORDS} records in {time.monotonic() - started:.1f} s")
        # The Rust side reads this line to know which codec the lz4 topic's batches must carry.
        print(f"librdkafka lz4 feature: {'enabled' if lz4_feature(bootstrap) else 'disabled'}")
    consume_and_verify(bootstrap, expected, mode)
    check_offsets(bootstrap, expected)
    if mode == "produce":
        check_admin(bootstrap)
    else:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT)
        check(ADMIN_TOPIC not in md.topics, f"{ADMIN_TOPIC} is back after the restart: its deletion was not durable")
    print(f"ok ({mode}) in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
