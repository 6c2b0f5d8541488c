"""A dead-letter record the producer can never write (bigger than its
message.max.bytes, as a compressed input batch's record can be) must not
block anything: it is written cut, with leanbridge.value.truncated giving the
original length (the source topic/partition/offset headers point at the
whole message), and every other dead letter and delivery, on every
partition, goes on; offsets reach the end."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"
BIG = b"not json " + b"x" * 3000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 3, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
good_lines, good_events = h.make_events(600, users=50, seed=17)
lines = [b"k-big\t" + BIG]
for i, line in enumerate(good_lines):
    lines.append(line.encode())
    if i % 20 == 0:
        lines.append(f"k-small-{i}\tnot json {i}".encode())
small = sum(1 for l in lines if l.startswith(b"k-small-"))
h.produce(kafka.bootstrap, TOPIC, lines)

bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ,
    **{"kafka.producer.message.max.bytes": "2000"}))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 90,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
by_key = {r["key"]: r for r in dlq}
h.check(len(dlq) == small + 1 and len(by_key) == small + 1,
        f"DLQ holds {len(dlq)} records, want {small + 1}")
big = by_key["k-big"]
h.check(big["headers"].get("leanbridge.value.truncated") == str(len(BIG)),
        f"truncated header {big['headers']}")
h.check(len(big["value"]) < len(BIG) and BIG.startswith(big["value"].encode()),
        f"the cut value is not a prefix of the original ({len(big['value'])} bytes)")
h.check(big["headers"].get("leanbridge.error.stage") == "parse", f"{big['headers']}")
for k, r in by_key.items():
    if k != "k-big":
        h.check("leanbridge.value.truncated" not in r["headers"], f"{k} cut: {r['headers']}")
        h.check(r["value"] == "not json " + k[len("k-small-"):], f"{k}: value changed")
counts = h.check_invariants(good_events, sandbox, [], allow_dup=False)
h.log(f"dead letter too large: {counts}, {len(dlq)} DLQ records")
print("1 passed, 0 failed")
