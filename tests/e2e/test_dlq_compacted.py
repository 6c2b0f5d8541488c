"""A compacted dead-letter topic (cleanup.policy=compact) refuses records
without a key, and the broker refuses the whole batch they are in
(INVALID_RECORD): on a real Apache Kafka broker, dead letters of keyed
events batched with those of keyless ones were never written either, and
the warning said only "Broker failed to validate record". Now a record
refused in a batch is written again alone (as for a batch too large), so
the keyed ones are written; the keyless ones wait, never dropped (their
partition's commits wait with them: nothing is lost), and the warning says
why: a compacted topic refuses records without a key. Skips (77) without a
broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ = "compact.events", "compact.dlq"
HINT = "a compacted topic refuses records without a key"


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 1)
        broker.create_topic(DLQ, 1, config={"cleanup.policy": "compact"})
        # no tab: no key; then keyed ones, all in the same burst
        lines = [f"not json {i}" for i in range(3)] + [f"k{i}\tnot json {i}" for i in range(3)]
        h.produce(broker.bootstrap, TOPIC, lines)
        sandbox = h.Sandbox(h.APPS, wd)
        bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ))
        h.wait_for(lambda: sorted(r["key"] for r in h.read_topic(broker.bootstrap, DLQ))
                   == ["k0", "k1", "k2"], 60, "the keyed events' dead letters written")
        h.wait_for(lambda: HINT in bridge.log_text(), 30, "a warning saying why")
        committed = h.committed(broker.bootstrap, "lbtest", TOPIC)
        h.check(all(off <= 0 for _, off, _ in committed),
                f"committed past dead letters that were never written: {committed}")
        h.check(bridge.stop() == 0, "bridge exit code")
        h.log(next(ln for ln in bridge.log_text().splitlines() if HINT in ln))
        sandbox.stop()
    print("1 passed, 0 failed")


main()
