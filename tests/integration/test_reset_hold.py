"""Issue 16, item 3: an answer that never came holds, not only a timeout.
The sandbox closes 30% of connections as soon as it has read the body
(--preset), with no answer, and goes on processing the request for 1.5 s
(its users held, then applied). Before, the bridge retried such a request
after its ~50 ms backoff (and libcurl itself resent it at once when the
connection was a reused one): the retry met the first copy at the API
(429 concurrent request for user, user_overlap > 0). Now the users stay
busy for api.timeout.hold.ms (3 s) before the retry, and libcurl's silent
resend is refused: no overlap, nothing lost."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--preset", "0.3", "--delay-ms", "1500",
                                       "--seed", "9"])
lines, events = h.make_events(200, users=40, seed=61)
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_hold_ms=3000,
    batch_max_users=5, batch_max_wait_ms=200, retry_max_attempts=-1))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 240,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
st = sandbox.stats()
h.check(st["resets"] > 0, f"no connection was reset: {st}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"{len(dlq)} dead letter(s)")
counts = h.check_invariants(events, sandbox, dlq, one_bridge=True)
h.log(f"resets after the body: {st['resets']} of {st['requests']} requests; "
      f"{counts}")
print("1 passed, 0 failed")
