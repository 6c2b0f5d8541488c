"""A dead-letter topic that does not exist, on a broker that does not create
topics on first use (a real Apache Kafka broker with
auto.create.topics.enable=false): nothing is lost (the partition's commits
wait for the dead letters), and the operator hears of it at once. Before,
librdkafka held the records quietly for message.timeout.ms (120 s): no log
line, no retry counted, while the lag grew. Now a warning names the topic
within about 10 s, and the gauges say how many wait and for how long. Once
the topic is created, every dead letter is written, nothing waits and the
offsets reach the end. Skips (77) without a broker, unless
LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ = "nodlq.events", "nodlq.dlq"
WARNING = "dead letter(s) not written, the oldest for"


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker(extra_props={"auto.create.topics.enable": "false"}) as broker:
        broker.create_topic(TOPIC, 1)
        bad = [f"k{i}\tnot json {i}" for i in range(5)]
        good, events = h.make_events(20, users=5, seed=3)
        h.produce(broker.bootstrap, TOPIC, bad + good)
        sandbox = h.Sandbox(h.APPS, wd)
        port = h.free_port()
        bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ,
                                                metrics_listen=f"127.0.0.1:{port}"))
        t0 = time.monotonic()
        h.wait_for(lambda: WARNING in bridge.log_text(), 40,
                   "a warning that dead letters wait unacknowledged")
        h.log(f"warned after {time.monotonic() - t0:.1f} s: " + next(
            ln for ln in bridge.log_text().splitlines() if WARNING in ln))
        h.check(DLQ in bridge.log_text().split(WARNING, 1)[1].splitlines()[0],
                "the warning does not name the dead-letter topic")
        waiting = h.metric(port, "leanbridge_dlq_waiting")
        oldest = h.metric(port, "leanbridge_dlq_oldest_waiting_seconds")
        h.check(waiting == 5 and oldest >= 10,
                f"the gauges should say 5 dead letters wait for 10 s or more: "
                f"{waiting}, {oldest} s")
        committed = h.committed(broker.bootstrap, "lbtest", TOPIC)
        h.check(all(off <= 0 for _, off, _ in committed),
                f"committed past dead letters that were never written: {committed}")
        broker.create_topic(DLQ, 1)
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 180,
                   "committed to the end once the topic exists")
        waiting = h.metric(port, "leanbridge_dlq_waiting")
        oldest = h.metric(port, "leanbridge_dlq_oldest_waiting_seconds")
        h.check(waiting == 0 and oldest == 0,
                f"nothing should wait once written: {waiting}, {oldest} s")
        h.check(bridge.stop() == 0, "bridge exit code")
        dlq = h.read_topic(broker.bootstrap, DLQ)
        h.check(sorted(r["key"] for r in dlq) == [f"k{i}" for i in range(5)],
                f"dead letters {sorted(r['key'] for r in dlq)}")
        h.check_invariants(events, sandbox, dlq)
        sandbox.stop()
    print("1 passed, 0 failed")


main()
