"""Keys count in pending.max.bytes: events with small values and 20 KB keys
(hostile, or just careless producers) must pause consumption once the keys'
bytes reach the bound, not only once the values' do. Nothing is lost."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"
KEY = 20000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "300"])
lines, events = h.make_events(150, users=30, seed=23)
# One key per user (a user's events stay in one partition, in order).
lines = [line.replace("\t", "-" + "k" * KEY + "\t", 1) for line in lines]
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, pending_max_bytes=200000,
    batch_max_bytes=100000, sender_max_inflight=1))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
pauses = [l for l in bridge.log_text().splitlines() if "pausing input" in l]
h.check(pauses, "consumption never paused: keys are not counted in pending.max.bytes")
counts = h.check_invariants(events, sandbox, [], allow_dup=False)
h.log(f"key bytes: {counts}; {len(pauses)} pause(s), e.g. {pauses[0][-60:]}")
print("1 passed, 0 failed")
