#!/usr/bin/env python3
"""confluent-kafka (librdkafka) transactions against a rill broker.

    confluent_txn.py BOOTSTRAP SEED

1. Interleaved transactions: a transactional producer runs ROUNDS transactions of RECORDS
   records each over a 3-partition topic, committing some and aborting others (chosen by SEED),
   while an idempotent non-transactional producer writes between them. A read_committed
   consumer sees exactly the committed and plain records, each once, in order per partition; a
   read_uncommitted consumer sees every record. The script prints `committed-rounds: ...` for the
   Rust side, which reads the topic with Rill's consumer and checks the same.
2. Consume-transform-produce: a group member reads the input read_committed and, per poll,
   writes the upper-cased values to an output topic and commits its input offsets with
   send_offsets_to_transaction in the same transaction. The output then holds one transformed
   copy of each committed input, and the group's committed offsets are the input's end offsets.
3. Zombie fencing: a second producer with the same transactional.id fences the first, whose next
   commit fails with a fatal error.
"""

import random
import sys
import time
import uuid

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    sys.exit(f"confluent-kafka is not installed ({e}); install it with `pip install confluent-kafka` (.ci/run does)")

from checks import check, fail  # noqa: E402 (beside this script)

PARTITIONS = 3
ROUNDS = 12
RECORDS = 40
TIMEOUT = 60


def create_topics(bootstrap, names):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names])
    for name, f in futures.items():
        try:
            f.result(TIMEOUT)
        except KafkaException as e:
            fail(f"create topic {name}: {e}")


def read_all(bootstrap, topic, isolation, want):
    """Read `topic` from the start with assign() until `want` records arrived and every partition's
    position reached its high watermark; return {partition: [(offset, key, value)]}."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None:
            if m.error():
                fail(f"{isolation} consumer of {topic}: {m.error()}")
            got[m.partition()].append((m.offset(), m.key().decode(), m.value().decode()))
            continue
        n = sum(len(v) for v in got.values())
        if n < want:
            continue
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)]
        positions = [tp.offset for tp in c.position([TopicPartition(topic, p) for p in range(PARTITIONS)])]
        # A partition never read from reports no position (-1001); it is done if it is empty of
        # what this isolation level shows, which `want` already accounts for.
        if all(pos >= end or pos < 0 for pos, end in zip(positions, ends)):
            break
    else:
        fail(f"{isolation} consumer of {topic}: {sum(len(v) for v in got.values())} of {want} records in {TIMEOUT}s")
    c.close()
    n = sum(len(v) for v in got.values())
    check(n == want, f"{isolation} consumer of {topic}: {n} records, expected {want}")
    return got


def interleaved(bootstrap, rng, topic):
    create_topics(bootstrap, [topic])
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"interleaved-{uuid.uuid4()}", "linger.ms": 5})
    plain = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    txn.init_transactions(TIMEOUT)
    committed, plain_count = [], 0
    for r in range(ROUNDS):
        txn.begin_transaction()
        for i in range(RECORDS):
            txn.produce(topic, key=f"t{r}-{i}", value=f"txn {r} record {i}", partition=i % PARTITIONS)
            if i % 10 == 0:
                plain.produce(topic, key=f"p{plain_count}", value=f"plain {plain_count}", partition=rng.randrange(PARTITIONS))
                plain_count += 1
            txn.poll(0)
        # Aborted records must reach the broker for read_uncommitted to see them: librdkafka
        # drops what it has not sent yet when a transaction aborts.
        check(txn.flush(TIMEOUT) == 0, "the transactional producer did not send everything")
        commit = rng.random() < 0.6
        if commit:
            txn.commit_transaction(TIMEOUT)
            committed.append(r)
        else:
            txn.abort_transaction(TIMEOUT)
    check(plain.flush(TIMEOUT) == 0, "the idempotent producer did not deliver everything")
    print("committed-rounds: " + ",".join(map(str, committed)))
    print(f"plain-records: {plain_count}")

    want = len(committed) * RECORDS + plain_count
    rc = read_all(bootstrap, topic, "read_committed", want)
    keys = [k for part in rc.values() for (_, k, _) in part]
    check(len(set(keys)) == len(keys), "read_committed saw a record twice")
    for part in rc.values():
        offsets = [o for (o, _, _) in part]
        check(offsets == sorted(offsets), "read_committed offsets go backwards")
        txn_keys = [k for (_, k, _) in part if k.startswith("t")]
        for k in txn_keys:
            r = int(k[1:].split("-")[0])
            check(r in committed, f"read_committed saw {k} of aborted transaction {r}")
        order = [tuple(map(int, k[1:].split("-"))) for k in txn_keys]
        check(order == sorted(order), "transactional records out of order within a partition")
    ru = read_all(bootstrap, topic, "read_uncommitted", ROUNDS * RECORDS + plain_count)
    check(sum(1 for part in ru.values() for (_, k, _) in part if k.startswith("t")) == ROUNDS * RECORDS,
          "read_uncommitted did not see every transactional record")
    print(f"interleaved: {ROUNDS} transactions ({len(committed)} committed), {plain_count} plain records: ok")
    return committed


def consume_transform_produce(bootstrap, source, committed):
    out = source + "-upper"
    create_topics(bootstrap, [out])
    group = f"ctp-{uuid.uuid4()}"
    want = len(committed) * RECORDS
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([source])
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"ctp-{uuid.uuid4()}", "linger.ms": 5})
    p.init_transactions(TIMEOUT)
    seen = 0
    deadline = time.monotonic() + TIMEOUT
    while seen < want and time.monotonic() < deadline:
        msgs = c.consume(num_messages=100, timeout=0.5)
        msgs = [m for m in msgs if not m.error() and m.key().decode().startswith("t")]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(out, key=m.key(), value=m.value().decode().upper().encode(), partition=m.partition())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        p.commit_transaction(TIMEOUT)
        seen += len(msgs)
    check(seen == want, f"consume-transform-produce read {seen} of {want} committed records")
    ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in c.assignment()}
    commits = {tp.partition: tp.offset for tp in c.committed(c.assignment(), timeout=10)}
    c.close()
    # The committed offset may stop short of the end only by markers and aborted or plain data
    # after the last transactional record read; check the output instead of exact offsets, and
    # that the group committed something for every partition.
    check(all(commits[p] > 0 and commits[p] <= ends[p] for p in commits), f"group offsets {commits} vs ends {ends}")
    got = read_all(bootstrap, out, "read_committed", want)
    values = sorted(v for part in got.values() for (_, _, v) in part)
    check(values == sorted(f"TXN {r} RECORD {i}" for r in committed for i in range(RECORDS)),
          "the output is not one upper-cased copy of each committed input")
    print(f"consume-transform-produce: {want} records through {len(got)} partitions: ok")


def zombie(bootstrap, topic):
    create_topics(bootstrap, [topic])
    tid = f"zombie-{uuid.uuid4()}"
    old = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    old.init_transactions(TIMEOUT)
    old.begin_transaction()
    old.produce(topic, key="zombie", value="must never be read", partition=0)
    old.flush(TIMEOUT)
    new = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    new.init_transactions(TIMEOUT)
    try:
        old.commit_transaction(TIMEOUT)
        fail("the fenced producer committed")
    except KafkaException as e:
        err = e.args[0]
        check(err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH),
              f"the zombie's commit failed, but not as fenced: {err}")
        print(f"zombie: fenced ({err.name()})")
    new.begin_transaction()
    new.produce(topic, key="fresh", value="the new instance", partition=0)
    new.commit_transaction(TIMEOUT)
    got = read_all(bootstrap, topic, "read_committed", 1)
    check([k for (_, k, _) in got[0]] == ["fresh"], f"read_committed after fencing saw {got[0]}")


def main():
    bootstrap, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    topic = f"txn-{seed}"
    committed = interleaved(bootstrap, rng, topic)
    consume_transform_produce(bootstrap, topic, committed)
    zombie(bootstrap, topic + "-zombie")


if __name__ == "__main__":
    main()
