"""The input topic deleted and created again while the bridge runs (an
operator's reset), on a real Apache Kafka broker: the bridge gives the
partition up when the topic goes, takes it again when it is back, delivers
the new events (their offsets start at 0 again) and commits them. Then
SIGTERM: the bridge exits 0 within its exit bound. librdkafka 2.0.2's
destroy never returns after such a topic came back (one of its threads
never ends); the bridge must not wait for it once the group is left.
Skips (77) without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ = "again.events", "again.dlq"


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 1)
        broker.create_topic(DLQ, 1)
        seq = {}  # each user's numbering goes on in the new topic
        lines, events = h.make_events(100, users=20, seed=41, start_seq=seq)
        h.produce(broker.bootstrap, TOPIC, lines)
        sandbox = h.Sandbox(h.APPS, wd)
        bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ))
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 60,
                   "the first 100 events committed")
        broker.delete_topic(TOPIC)
        h.wait_for(lambda: TOPIC not in broker.topics(), 30, "the topic deleted")
        broker.create_topic(TOPIC, 1)
        again, again_events = h.make_events(50, users=20, seed=42, start_seq=seq)
        h.produce(broker.bootstrap, TOPIC, again)
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 90,
                   "the new topic's 50 events committed")
        got = {a["action"]["eid"] for a in sandbox.actions()}
        h.check(all(e["eid"] in got for e in events + again_events),
                f"delivered {len(got)} distinct events, want all 150")
        m = re.search(r"exit bound (\d+) ms", bridge.log_text())
        h.check(m is not None, "no 'exit bound N ms' in the startup log")
        bound_s = int(m.group(1)) / 1000
        t0 = time.monotonic()
        rc = bridge.stop(timeout=bound_s + 5)
        took = time.monotonic() - t0
        h.log(f"SIGTERM -> exit {rc} in {took:.1f} s (exit bound {bound_s:.0f} s)")
        h.check(rc == 0, f"bridge exit code {rc}")
        h.check(took <= bound_s, f"exit took {took:.1f} s, over the {bound_s:.0f} s bound")
        h.check_invariants(events + again_events, sandbox, [])
        sandbox.stop()
    print("1 passed, 0 failed")


main()
