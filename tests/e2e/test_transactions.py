"""Input written by transactional producers, on a real Apache Kafka broker:
events of committed transactions are delivered, those of aborted ones are
not (the consumer reads committed records only), and the group's committed
offsets still reach the end of every partition, past the transaction
markers and the aborted records that no message stands for (else the lag
would stay above 0 for ever, and the lag alert with it). Two partitions:
committed, aborted, committed, then an aborted transaction last, so that
the end of each partition is records the bridge never sees. Skips (77)
without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ = "txn.events", "txn.dlq"


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 2)
        broker.create_topic(DLQ, 1)
        lines, events = h.make_events(160, users=40, seed=31)
        chunks = [lines[i:i + 40] for i in range(0, 160, 40)]
        kept = [e for i, e in enumerate(events) if (i // 40) % 2 == 0]
        script = []
        for i, chunk in enumerate(chunks):
            script += ["\\BEGIN"] + chunk + (["\\COMMIT"] if i % 2 == 0 else ["\\ABORT"])
        h.produce(broker.bootstrap, TOPIC, script, transactional_id="txn-test")
        sandbox = h.Sandbox(h.APPS, wd)
        port = h.free_port()
        bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ,
                                                metrics_listen=f"127.0.0.1:{port}"))
        h.wait_for(lambda: len({a["action"]["eid"] for a in sandbox.actions()}) >= len(kept),
                   60, "the committed transactions' events delivered")
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 60,
                   "committed offsets at the end of both partitions (past the markers "
                   "and the aborted records)")
        lags = [f'leanbridge_consumer_lag{{topic="{TOPIC}",partition="{p}"}}' for p in (0, 1)]
        h.wait_for(lambda: all(h.metric(port, lag) == 0 for lag in lags), 30,
                   "leanbridge_consumer_lag 0 on both partitions")
        h.check(bridge.stop() == 0, "bridge exit code")
        got = {a["action"]["eid"] for a in sandbox.actions()}
        h.check(got == {e["eid"] for e in kept},
                f"delivered {len(got)} events, want the {len(kept)} of committed transactions")
        h.check(not h.read_topic(broker.bootstrap, DLQ), "dead letters written")
        h.check_invariants(kept, sandbox, [])
        sandbox.stop()
    print("1 passed, 0 failed")


main()
