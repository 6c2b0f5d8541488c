"""Static membership on a real Apache Kafka broker: three members, each with
its own kafka.group.instance.id (as the chart gives each pod its name), and
events arriving throughout. One member is restarted (SIGTERM, then started
again at once, well within session.timeout.ms): the other two are revoked
nothing and assigned nothing (no rebalance reaches them), the restarted
member gets its own partitions back, and at the end nothing is lost, no
user was in two requests at once and per-user order held. Skips (77)
without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

PARTS, USERS, BATCHES, PER_BATCH = 6, 300, 40, 100


def rebalance_lines(b):
    """The consumer's "assigned N", "revoking N" and "lost N partition(s)"."""
    return [l for l in b.log_text().splitlines()
            if "[consumer]" in l and "partition(s)" in l and
            any(w in l for w in ("assigned", "revoking", "lost"))]


def run(broker, wd):
    topic, dlq, group = "static.events", "static.dlq", "static"
    broker.create_topic(topic, PARTS)
    broker.create_topic(dlq, 1)
    sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "200"])
    s = h.bridge_settings(broker.bootstrap, sandbox, topic, dlq, group=group,
                          batch_max_wait_ms=2000)
    # A static member keeps its partitions for session.timeout.ms after it
    # left; the broker's default group.max.session.timeout.ms allows 30 s.
    s["kafka.consumer.session.timeout.ms"] = "20000"
    members = {}
    for i in range(3):
        members[i] = h.Bridge(wd, dict(s, **{"kafka.consumer.group.instance.id": f"leanbridge-{i}"}),
                              name=f"member-{i}")

    events, seqs, stop = [], {}, threading.Event()

    def producer():
        for n in range(BATCHES):
            if stop.is_set():
                return
            lines, evs = h.make_events(PER_BATCH, users=USERS, seed=100 + n, start_seq=seqs)
            h.produce(broker.bootstrap, topic, lines)
            events.extend(evs)
            time.sleep(0.5)

    # Wait for the three to share the partitions before the traffic starts.
    h.wait_for(lambda: all(rebalance_lines(b) for b in members.values()), 120, "three members joined")
    time.sleep(3)
    t = threading.Thread(target=producer)
    t.start()
    time.sleep(6)
    before = {i: len(rebalance_lines(b)) for i, b in members.items()}
    h.log(f"rebalance log lines before the restart: {before}")
    rc = members[1].stop(timeout=90)
    h.check(rc == 0, f"member-1 exit code {rc}")
    restarted = time.time()
    members[1].start()
    h.wait_for(lambda: len([l for l in rebalance_lines(members[1]) if "assigned" in l]) >= 2, 60,
               "the restarted member assigned again")
    h.log(f"member-1 back with its partitions {time.time() - restarted:.1f} s after its restart")
    t.join()
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, topic), 300,
               "committed offsets at the end of every partition")
    after = {i: len(rebalance_lines(b)) for i, b in members.items()}
    h.log(f"rebalance log lines after: {after}")
    for i in (0, 2):
        h.check(after[i] == before[i],
                f"member-{i} saw a rebalance during member-1's restart:\n" +
                "\n".join(rebalance_lines(members[i])[before[i]:]))
    # What it held when it stopped is its last assignment before the restart
    # (the first may predate the third member's join: 3, then 2).
    lines = rebalance_lines(members[1])
    held = [l for l in lines[:before[1]] if "assigned" in l]
    back = [l for l in lines[before[1]:] if "assigned" in l]
    h.check(held and back and back[-1].split("assigned")[1] == held[-1].split("assigned")[1],
            f"member-1 got the same number of partitions back: {lines}")
    for i, b in members.items():
        rc = b.stop(timeout=90)
        h.check(rc == 0, f"member-{i} exit code {rc}")
    records = h.read_topic(broker.bootstrap, dlq)
    counts = h.check_invariants(events, sandbox, records)
    h.check(counts["dead_lettered"] == 0, f"{counts}")
    h.log(f"static membership: {counts}; overlaps {sandbox.stats()['user_overlap']}")


def main():
    kb.skip_unless_available(h.fail)
    with kb.Broker() as broker:
        h.log(f"Kafka {broker.version} at {broker.bootstrap}")
        run(broker, h.workdir())
    print("1 passed, 0 failed")


main()
