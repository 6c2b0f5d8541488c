"""Issue 24, defect 3: a Retry-After cannot stall outage mode. The sandbox
answers every request with 429 and `Retry-After: 3600` for OUTAGE_S seconds
(--fail-window ...:429, --retry-after 3600) while events keep arriving; the
bridge runs with retry.backoff.max.ms=2000. Outside outage mode the bridge
honours Retry-After (it is the API's word for one request); in it, probes go
at most the probe cap apart whatever Retry-After says, and retries that were
told to wait an hour before outage mode began are brought forward when it
begins. Before the fix the probe and every retry waited the hour: nothing
reached the API after it came back. Now the first answered request comes
within 5 s of the API's recovery, everything is delivered and committed,
nothing is dead-lettered, and per-user order holds."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
START_S, OUTAGE_S, AFTER_S = 8, 25, 5
RATE = 40  # events per second, produced in one batch a second

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
t_sandbox = time.time()
sandbox = h.Sandbox(h.APPS, wd, extra=[
    "--fail-window", f"{START_S * 1000}:{OUTAGE_S * 1000}:429", "--retry-after", "3600"])
window_end = t_sandbox + START_S + OUTAGE_S
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, metrics_listen=f"127.0.0.1:{port}",
    retry_backoff_initial_ms=250, retry_backoff_max_ms=2000))

producer = h.SteadyProducer(kafka.bootstrap, TOPIC, RATE, seed=2000)
h.wait_for(lambda: sandbox.stats().get("window_refused", 0) > 0, START_S + 60,
           "the outage window")
h.wait_for(lambda: h.metric(port, "leanbridge_api_outage") == 1, OUTAGE_S,
           "the bridge to enter outage mode")
h.log("in outage mode; waiting for the API to come back")
h.wait_for(lambda: time.time() > window_end + AFTER_S, OUTAGE_S + 60,
           "the end of the outage")
producer.stop()
events = producer.events
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition (a probe or a "
           "retry waiting out Retry-After: 3600?)")
h.check(h.metric(port, "leanbridge_api_outage") == 0, "still in outage mode")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")

ok_after = [r["recv_ms"] / 1000 for r in sandbox.requests()
            if r.get("status") == 200 and r["recv_ms"] / 1000 >= window_end]
h.check(ok_after, "no request answered after the outage")
recovery = min(ok_after) - window_end
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"{len(dlq)} dead letter(s), e.g. {dlq[0]['headers'] if dlq else None}")
counts = h.check_invariants(events, sandbox, dlq)
h.log(f"429 + Retry-After 3600 for {OUTAGE_S} s: {sandbox.stats()['window_refused']} "
      f"refused; first answered request {recovery:.1f} s after the API came back; {counts}")
h.check(recovery <= 5, f"first answered request {recovery:.1f} s after the API came back "
        "(over the 2 s probe cap and a turn)")
print("1 passed, 0 failed")
