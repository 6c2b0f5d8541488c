"""A revocation that gives up (rebalance.timeout.ms far below the request
time) must not leave its requests running behind the next owner's back: the
instance keeps the revoked partitions' users busy until its requests at the
API have ended, never retries or dead-letters their actions, and only then
lets the partitions go. The sandbox takes 8 s per request and answers 429 to
a request for a user another request holds: user_overlap must stay 0 across
the two instances. Nothing is lost or dead-lettered; both exit 0."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 600

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "8000"])
lines, events = h.make_events(N, users=40, seed=13)
h.produce(kafka.bootstrap, TOPIC, lines)

settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             rebalance_timeout_ms=300, api_timeout_ms=20000,
                             batch_max_users=5, batch_linger_ms=0)
a = h.Bridge(wd, settings, name="a")
h.wait_for(lambda: sandbox.stats().get("inflight", 0) >= 2, 60,
           "instance a's requests at the API")
b = h.Bridge(wd, settings, name="b")
h.wait_for(lambda: "revoking" in a.log_text() or "under way" in a.log_text(),
           60, "instance a's revocation")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 240,
           "committed offsets at the end of every partition")
rc_b = b.stop()
rc_a = a.stop()
h.check(rc_a == 0 and rc_b == 0, f"exit codes a={rc_a} b={rc_b}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered: {[r['headers'] for r in dlq[:3]]}")
counts = h.check_invariants(events, sandbox, dlq)
h.log(f"revocation with requests running: {counts}; sandbox {sandbox.stats()}")
print("1 passed, 0 failed")
