"""The happy path on the mock cluster: several apps, hundreds of users,
thousands of events and some tombstones. Every event arrives exactly once,
per-user order holds, no request breaks a limit, the group's committed
offsets reach the end of every partition, and SIGTERM exits 0."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(6000, users=400, tombstones=25)
h.produce(kafka.bootstrap, TOPIC, lines)

t0 = time.time()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
elapsed = time.time() - t0
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc} after SIGTERM\n{bridge.log_text()[-3000:]}")

dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered, got {len(dlq)}: {dlq[:2]}")
counts = h.check_invariants(events, sandbox, dlq, allow_dup=False)
h.check(counts["delivered"] == 6000, f"delivered {counts}")
st = sandbox.stats()
reqs = st["requests"]
h.log(f"happy path: {counts}, requests={reqs}, "
      f"actions/request={counts['delivered'] / max(reqs, 1):.1f}, time to commit all={elapsed:.1f}s")
h.check("SECRET" not in bridge.log_text(), "a client key appeared in the log")
print("1 passed, 0 failed")
