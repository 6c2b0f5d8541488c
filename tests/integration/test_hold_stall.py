"""Issue 16, repro 2: a timed-out request stalls nothing. The sandbox makes
30% of requests sleep 1.5 s (then 504); the bridge gives up after 500 ms,
and dead-letters at once (retry.max.attempts=1), so those requests' users
are held for api.timeout.hold.ms = 15 s. Before the fix a held flight kept
its sender slot and every timeout halved the concurrency limit: with
sender.max.inflight=4 the bridge sat idle in gaps of exactly 15.5 s
(pending=3 live=3 inflight=0 concurrency=1), taking over a minute for 120
events. Holds take no slot and do not shrink the limit now: everything is
delivered or dead-lettered long before the first hold would have ended."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
HOLD_MS = 15000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--slow", "0.3", "--slow-ms", "1500",
                                       "--seed", "5"])
lines, events = h.make_events(120, users=60, seed=51)
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=500,
    api_timeout_hold_ms=HOLD_MS, retry_max_attempts=1, batch_max_users=2,
    sender_max_inflight=4))
h.wait_for(lambda: sandbox.stats().get("requests", 0) > 0, 60,
           "the first request")
t0 = time.monotonic()
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
took = time.monotonic() - t0
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
st = sandbox.stats()
h.check(st["faults"]["slow"] > 0, f"no request was slow: {st}")
h.log(f"120 events handled {took:.1f} s after the first request; "
      f"{st['faults']['slow']} slow request(s) of {st['requests']}")
h.check(took < HOLD_MS / 1000,
        f"took {took:.1f} s: a hold ({HOLD_MS} ms) stalled the bridge")
dlq = h.read_topic(kafka.bootstrap, DLQ)
counts = h.check_invariants(events, sandbox, dlq)
h.log(f"timeouts with long holds: {counts}")
print("1 passed, 0 failed")
