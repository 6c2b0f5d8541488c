"""A dead-letter topic whose max.message.bytes is below the producer's batch
size refuses a whole batch of records that each fit (MESSAGE_TOO_LARGE for
the batch, reported for every record in it). Those records must still be
written whole: each is produced again alone, and only a record that is
refused alone is written cut (leanbridge.value.truncated). On a real Apache
Kafka broker: 80 events that are not JSON, 3,000 bytes each, in a burst
(the DLQ producer batches them), a DLQ topic allowing 20,000 bytes a batch,
and one event of 30,000 bytes that can never fit. Skips (77) without a
broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ, N, LIMIT = "limit.events", "limit.dlq", 80, 20000
HUGE = b"not json " + b"y" * 30000


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 1)
        broker.create_topic(DLQ, 1, config={"max.message.bytes": str(LIMIT)})
        bad = {f"k-{i}".encode(): f"not json {i} ".encode() + b"x" * 3000 for i in range(N)}
        good_lines, good_events = h.make_events(200, users=30, seed=23)
        lines = [k + b"\t" + v for k, v in bad.items()]
        lines.insert(N // 2, b"k-huge\t" + HUGE)
        lines += [line.encode() for line in good_lines]
        h.produce(broker.bootstrap, TOPIC, lines)
        sandbox = h.Sandbox(h.APPS, wd)
        bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ))
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 120,
                   "committed to the end")
        log = bridge.log_text()
        h.check(bridge.stop() == 0, "bridge exit code")
        dlq = h.read_topic(broker.bootstrap, DLQ)
        by_key = {r["key"]: r for r in dlq}
        cut = sorted(k for k, r in by_key.items() if "leanbridge.value.truncated" in r["headers"])
        h.log(f"{len(dlq)} dead letters, cut: {cut[:5]}{'...' if len(cut) > 5 else ''} "
              f"({len(cut)})")
        h.check(set(by_key) == {k.decode() for k in bad} | {"k-huge"},
                f"dead letters for {len(by_key)} keys, want {N + 1}")
        h.check(cut == ["k-huge"], f"{len(cut)} record(s) written cut, want only k-huge")
        for k, v in bad.items():
            r = by_key[k.decode()]
            h.check(r["value"].encode() == v and r["headers"].get("leanbridge.error.stage")
                    == "parse", f"{k.decode()}: not the original value, or not stage parse")
        h.check(by_key["k-huge"]["headers"]["leanbridge.value.truncated"] == str(len(HUGE)),
                "k-huge: truncated header")
        h.check("written alone" in log, "no log line saying records were produced alone")
        h.check_invariants(good_events, sandbox, dlq)
        sandbox.stop()
    print("1 passed, 0 failed")


main()
