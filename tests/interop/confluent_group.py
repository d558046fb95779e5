#!/usr/bin/env python3
"""confluent-kafka consumers in one group against a rill broker.

    confluent_group.py BOOTSTRAP TOPIC GROUP run|verify

run: three confluent-kafka consumers (one of them in a child process) and one Rill consumer
(`rill consume --group`, the binary in $RILL_BIN) join GROUP and share a 6-partition topic,
committing after each batch; then 6,000 records are produced. Every record is consumed exactly
once. Then the
child is killed with SIGKILL: after its session times out, the other two take over its
partitions from the committed offsets, and 3,000 more records are consumed; a record is seen
twice only if the killed member had read it without committing it. Finally the members leave
and every partition's committed offset is its end offset.

verify (after a broker restart): the committed offsets are still the end offsets, and a new
member of the group reads nothing old.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    sys.exit(f"confluent-kafka is not installed ({e}); install it with `pip install confluent-kafka` (.ci/run does)")

from checks import check, fail  # noqa: E402 (beside this script)

PARTITIONS = 6
FIRST, SECOND = 6000, 3000
TIMEOUT = 60


def consumer(bootstrap, group, name):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
        }
    )


def produce(bootstrap, topic, start, n):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors = []
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=f"r{i}".encode(), partition=i % PARTITIONS,
                  on_delivery=lambda err, _m: err and errors.append(err))
    check(p.flush(TIMEOUT) == 0 and not errors, f"produce failed: {errors[:3]}")


def run_member(bootstrap, topic, group, name, seen, lock, stop):
    """Consume and commit after each batch; record (value, partition, offset, committed?)."""
    c = consumer(bootstrap, group, name)
    c.subscribe([topic])
    while not stop.is_set():
        msgs = c.consume(num_messages=200, timeout=0.2)
        batch = []
        for m in msgs:
            if m.error():
                fail(f"{name}: {m.error()}")
            batch.append((m.value().decode(), m.partition(), m.offset()))
        if batch:
            c.commit(asynchronous=False)
            with lock:
                seen.extend((v, p, o, name) for v, p, o in batch)
    c.close()


def child_member(bootstrap, topic, group, queue):
    """The member that gets killed: reports each record after committing it."""
    c = consumer(bootstrap, group, "victim")
    c.subscribe([topic])
    while True:
        msgs = c.consume(num_messages=50, timeout=0.2)
        batch = [(m.value().decode(), m.partition(), m.offset()) for m in msgs if not m.error()]
        if batch:
            c.commit(asynchronous=False)
            for b in batch:
                queue.put(b)


def wait_for(cond, what):
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.05)


def end_offsets(bootstrap, topic, group):
    c = consumer(bootstrap, group, "probe")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1] for p in range(PARTITIONS)}
    committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=TIMEOUT)}
    c.close()
    return ends, committed


def rill_member(bootstrap, topic, group, seen, lock):
    """`rill consume --group`: each printed line `partition:offset<TAB>value` was committed after."""
    proc = subprocess.Popen(
        [os.environ["RILL_BIN"], "consume", "--bootstrap", bootstrap, "--topic", topic, "--group", group,
         "--from", "earliest", "--print-offset", "--property", "session.timeout.ms=6000",
         "--property", "heartbeat.interval.ms=500", "--property", "partition.assignment.strategy=range"],
        stdout=subprocess.PIPE, text=True)

    def read():
        for line in proc.stdout:
            _pos, value = line.rstrip("\n").split("\t", 1)
            with lock:
                seen.append((value, "rill"))
    threading.Thread(target=read, daemon=True).start()
    return proc


def group_members(admin, group):
    (f,) = admin.describe_consumer_groups([group]).values()
    d = f.result(TIMEOUT)
    return len(d.members), str(d.state)


def run(bootstrap, topic, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (f,) = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values()
    f.result(TIMEOUT)

    seen, lock, stop = [], threading.Lock(), threading.Event()
    rill_seen = []
    rill = rill_member(bootstrap, topic, group, rill_seen, lock)
    queue = multiprocessing.Queue()
    victim = multiprocessing.Process(target=child_member, args=(bootstrap, topic, group, queue), daemon=True)
    victim.start()
    members = [threading.Thread(target=run_member, args=(bootstrap, topic, group, f"m{i}", seen, lock, stop))
               for i in range(2)]
    for t in members:
        t.start()
    victim_seen = []
    # All four in the group and stable before any record exists: no rebalance mid-stream but
    # the one the kill causes.
    wait_for(lambda: group_members(admin, group) == (4, "ConsumerGroupState.STABLE"), "four stable members")
    produce(bootstrap, topic, 0, FIRST)

    def drain():
        while not queue.empty():
            victim_seen.append(queue.get())

    def values():
        drain()
        with lock:
            return [s[0] for s in seen] + [v[0] for v in victim_seen] + [v for v, _ in rill_seen]

    wait_for(lambda: len(set(values())) >= FIRST, f"the first {FIRST} records")
    vals = values()
    check(len(vals) == len(set(vals)) == FIRST, f"first phase: {len(vals)} reads of {len(set(vals))} records")
    check(victim_seen, "the child member never got a partition")
    check(rill_seen, "the Rill member never got a partition")
    print(f"first phase: {FIRST} records consumed once each by 4 members "
          f"({len(victim_seen)} by the child, {len(rill_seen)} by the Rill consumer)")

    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    drain()
    produce(bootstrap, topic, FIRST, SECOND)
    wait_for(lambda: len(set(values())) >= FIRST + SECOND, f"all {FIRST + SECOND} records after the kill")
    stop.set()
    for t in members:
        t.join()
    rill.send_signal(signal.SIGTERM)  # commits what it printed and leaves the group
    check(rill.wait(TIMEOUT) == 0, f"rill consume exited with {rill.returncode}")
    vals = values()
    dupes = len(vals) - len(set(vals))
    # The killed member committed every batch before reporting it: nothing it reported may be
    # read again, and nothing else is read twice either.
    check(dupes == 0, f"{dupes} records read twice although every read was committed first")
    check(set(vals) == {f"r{i}" for i in range(FIRST + SECOND)}, "records missing after the takeover")
    ends, committed = end_offsets(bootstrap, topic, group)
    check(committed == ends, f"committed {committed} != end offsets {ends}")
    print(f"after SIGKILL of a member: {SECOND} more records, taken over from committed offsets, none lost")


def verify(bootstrap, topic, group):
    ends, committed = end_offsets(bootstrap, topic, group)
    check(committed == ends and sum(ends.values()) == FIRST + SECOND, f"after restart: committed {committed}, ends {ends}")
    c = consumer(bootstrap, group, "after-restart")
    c.subscribe([topic])
    got = c.consume(num_messages=100, timeout=8)
    c.close()
    check(not [m for m in got if not m.error()], f"a new member re-read {len(got)} committed records")
    print(f"after restart: committed offsets {committed} survive")


def main():
    if len(sys.argv) != 5 or sys.argv[4] not in ("run", "verify"):
        sys.exit(__doc__)
    bootstrap, topic, group, mode = sys.argv[1:]
    started = time.monotonic()
    (run if mode == "run" else verify)(bootstrap, topic, group)
    print(f"{mode} done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
