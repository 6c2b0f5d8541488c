"""A request the bridge stopped waiting for (api.timeout.ms) may still be
running at the API: its retry, and the users' next requests, must not overlap
it. The sandbox makes half of the requests sleep 1500 ms (then 504) and
holds their users meanwhile; the bridge times out after 500 ms, while the
sandbox still holds them. (Not every request: an API that times out on
everything is an outage, which dead-letters nothing: test_api_outage.py.)
With api.timeout.hold.ms above the sandbox's sleep, no request for a user
may reach the sandbox while another one for that user is still there
(user_overlap = 0); every event ends delivered or dead-lettered
(retries_exhausted, after at least 2 requests, when both timed out) and
offsets reach the end."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--slow", "0.5", "--slow-ms", "1500",
                                       "--seed", "21"])
lines, events = h.make_events(120, users=12, seed=21)
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=500,
    api_timeout_hold_ms=2000, retry_max_attempts=2, batch_max_users=4,
    retry_backoff_initial_ms=100, retry_backoff_max_ms=200))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 240,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
stages = {r["headers"].get("leanbridge.error.stage") for r in dlq}
h.check(stages <= {"retries_exhausted"}, f"dead-letter stages {stages}")
for r in dlq:
    h.check(int(r["headers"].get("leanbridge.attempts", "0")) >= 2,
            f"attempts header {r['headers']}")
    h.check("leanbridge.error.http.status" not in r["headers"],
            f"no response, yet an http.status header: {r['headers']}")
counts = h.check_invariants(events, sandbox, dlq, one_bridge=True)
st = sandbox.stats()
h.check(st["faults"]["slow"] > 0, f"no request timed out: {st}")
h.log(f"timeouts: {counts}; sandbox: {st}")
print("1 passed, 0 failed")
