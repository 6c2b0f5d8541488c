"""Issue 16, repro 1 (revocation): as test_hold_sigterm.py, but the first
instance stays and a second one joins the group. Everything the first sent
is already committed (dead-lettered on timeout) while its requests still run
at the API; new events for the same users are waiting. The revocation must
not let the partitions go while the ledger holds their users: before the
ledger, it waited only for flights that gave actions up, so the second
instance's requests met the first's at the API (user_overlap > 0). The
sandbox's delay is chosen to outlast the mock cluster's ~5 s rebalance
(session.timeout.ms - 1000) while the hold stays under the ~12 s after
which it evicts a member that has not answered a revocation."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
DELAY_MS, HOLD_MS = 9000, 9500

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", str(DELAY_MS)])
seq = {}
lines, events = h.make_events(40, users=8, seed=41, start_seq=seq)
h.produce(kafka.bootstrap, TOPIC, lines)
settings = h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=500,
    api_timeout_hold_ms=HOLD_MS, retry_max_attempts=1, batch_max_wait_ms=100,
    rebalance_timeout_ms=300)
a = h.Bridge(wd, settings, name="a")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60,
           "instance a's offsets committed (dead-lettered on timeout)")
h.check(sandbox.stats().get("inflight", 0) > 0,
        "no request still running at the API: the test proves nothing")
more, more_events = h.make_events(40, users=8, seed=42, start_seq=seq)
h.produce(kafka.bootstrap, TOPIC, more)
b = h.Bridge(wd, dict(settings, **{"api.timeout.ms": "20000"}), name="b")
h.wait_for(lambda: "revoking" in a.log_text(), 60, "instance a's revocation")
h.wait_for(lambda: "assigned" in b.log_text(), 90, "instance b's assignment")
# What follows the handover under test does not matter: a leaves (its
# shutdown waits for its own held users too), b finishes everything.
rc_a = a.stop(timeout=120)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
time.sleep(1)
rc_b = b.stop()
h.check(rc_a == 0 and rc_b == 0, f"exit codes a={rc_a} b={rc_b}")
st = sandbox.stats()
h.check(st["user_overlap"] == 0,
        f"{st['user_overlap']} request(s) for a user the API was still "
        f"processing: instance a let its partitions go while its timed-out "
        f"requests ran")
counts = h.check_invariants(events + more_events, sandbox,
                            h.read_topic(kafka.bootstrap, DLQ))
h.log(f"revocation with held requests: {counts}; sandbox {st}")
print("1 passed, 0 failed")
