"""An answer over the bridge's read limit (16 MiB) is not retried as it is:
the API answered, so it applied the request, and the same request would be
answered as large again, applied again each time until its retries ran out,
then dead-lettered (the test's 2,000 events: before the fix, every start's
request dead-lettered after 5 applications (retry.max.attempts=5)). The request is split instead,
like one over the API's limits, until its halves' answers fit; the bridge
says which setting to lower. The sandbox answers each applied start with
250,000 bytes of variables (a real start returns the user's variables): a
request of 500 actions (~83 starts) gets ~21 MB, one of 250 ~10 MB."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--start-vars-bytes", "250000"])
lines, events = h.make_events(2000, users=60, seed=7)
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        retry_max_attempts="5"))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered, {len(dlq)} were: {dlq[:1]}")
# Split requests were applied whole first: duplicates, never losses.
counts = h.check_invariants(events, sandbox, dlq, allow_dup=True)
h.check(counts["delivered"] == 2000, f"{counts}")
big = [r for r in sandbox.requests() if r.get("status") == 200 and r.get("actions", 0) > 400]
sizes = sorted({r.get("actions") for r in sandbox.requests() if r.get("status") == 200})
h.check(big, f"no request of over 400 actions was answered: sizes {sizes}")
log = bridge.log_text()
h.check("answer" in log and "batch.max.actions" in log,
        "the log should say the answers are too large and what to lower")
h.check(log.count("too large") < 40, "the warning should be throttled")
h.log(f"big answers: {counts}; request sizes answered {sizes}")
kafka.stop()
print("1 passed, 0 failed")
