"""A second instance joins the group during load and later leaves it
(SIGTERM). Revoked partitions finish their in-flight work and commit before
being released; nothing is lost; duplicates (few) are reported."""
import sys

import harness as h

# argv[1]: the assignor ("eager", the default, or "cooperative").
COOPERATIVE = len(sys.argv) > 1 and sys.argv[1] == "cooperative"

TOPIC, DLQ = "events", "events.dlq"
N = 30000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 6, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "100"])
lines, events = h.make_events(N, users=2000, seed=4)
h.produce(kafka.bootstrap, TOPIC, lines)

settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, sender_max_inflight=2,
                             pending_max_actions=3000)
if COOPERATIVE:
    settings["kafka.consumer.partition.assignment.strategy"] = "cooperative-sticky"
a = h.Bridge(wd, settings, name="a")
h.wait_for(lambda: sandbox.accepted_count() > N // 6, 120, "progress before the join")
b = h.Bridge(wd, settings, name="b")
h.wait_for(lambda: "assigned" in b.log_text(), 60, "the second instance to get partitions")
h.log(f"b joined at {sandbox.accepted_count()} accepted actions")
h.wait_for(lambda: sandbox.accepted_count() > N // 2, 120, "progress with two instances")
rc_b = b.stop()
h.check(rc_b == 0, f"instance b exit code {rc_b}")
h.log(f"b left at {sandbox.accepted_count()} accepted actions")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 300,
           "committed offsets at the end of every partition")
rc_a = a.stop()
h.check(rc_a == 0, f"instance a exit code {rc_a}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, "nothing should be dead-lettered")
counts = h.check_invariants(events, sandbox, dlq)
h.check(counts["delivered"] == N, f"{counts}")
h.check("revoking" in a.log_text() or "lost" in a.log_text(), "instance a never saw a revocation")
h.log(f"rebalance (join + leave, {'cooperative-sticky' if COOPERATIVE else 'eager'}): {counts}")
print("1 passed, 0 failed")
