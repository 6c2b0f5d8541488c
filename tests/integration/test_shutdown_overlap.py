"""SIGTERM while a request is still running at the API and
shutdown.timeout.ms is shorter than it: the bridge gives up its actions
(uncommitted, redone by the next owner) but must not leave the group until
that request has ended, or the next owner sends the same users while the
API still processes them (the sandbox answers such a request 429 and counts
an overlap). A second instance starts once the first has exited; at the end
no overlap, everything delivered, every offset committed. (A revocation in
the middle of such a drain is the churn test's, on a real broker: the mock
cluster evicts a member that holds a revocation for ~10 s.)"""
import signal

import harness as h

TOPIC, DLQ = "events", "events.dlq"
DELAY_MS = 15000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", str(DELAY_MS)])
lines, events = h.make_events(300, users=20, seed=17)
h.produce(kafka.bootstrap, TOPIC, lines)
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             api_timeout_ms=30000, shutdown_timeout_ms=300)
first = h.Bridge(wd, settings, name="first")
h.wait_for(lambda: sandbox.stats().get("inflight", 0) > 0, 60,
           "a request running at the API")
rc = first.stop(signal.SIGTERM, timeout=120)
h.check(rc == 0, f"first bridge exit code {rc}\n{first.log_text()[-2000:]}")
h.check("not finished" in first.log_text(),
        "the first bridge gave nothing up (all done within shutdown.timeout.ms): "
        "the test proves nothing")
second = h.Bridge(wd, settings, name="second")
# its SIGTERM handler is set by then (a CI run stopped it before: the
# offsets could already be committed, and it died of the signal, -15)
h.wait_for(lambda: "started" in second.log_text(), 60, "the second bridge's start")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 240,
           "committed offsets at the end of every partition")
rc = second.stop()
h.check(rc == 0, f"second bridge exit code {rc}")
st = sandbox.stats()
h.check(st["user_overlap"] == 0,
        f"{st['user_overlap']} request(s) for a user the API was still "
        f"processing: the first bridge left before its request ended")
counts = h.check_invariants(events, sandbox, h.read_topic(kafka.bootstrap, DLQ))
h.log(f"shutdown during a request: {counts}")
print("1 passed, 0 failed")
