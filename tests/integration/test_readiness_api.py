"""/readyz's "API unreachable" says the API stopped answering, not that one
request in many was cut. (test_readiness_signal.py: an API that is down
makes the bridge unready, and ready again once it answers.)

1. Partial failures: the sandbox cuts 30% of the connections mid-answer
   (--pdrop 0.3) under steady traffic. Before, the flag was the last
   attempt's outcome, so readiness flipped with every cut request (12 of 40
   samples unready in a review's run): an orchestrator took a working
   member out of its Service and back. Passes when no sample over 15 s is
   unready while other requests are answered.
2. A quiet topic after the last failure: events whose every attempt was
   cut (retry.max.attempts=1) are dead-lettered, and then nothing comes.
   Before, the last attempt's failure stayed the verdict: "API unreachable"
   for as long as the topic was quiet, with the API answering. Passes when
   /readyz is 200 within 5 s of the last event being done."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 3, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--pdrop", "0.3", "--seed", "7"], action_log=False)
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen=f"127.0.0.1:{port}",
                                        batch_max_wait_ms=200, batch_linger_ms=50,
                                        api_timeout_hold_ms=2000))
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "ready")

# 1. Partial failures under steady traffic.
prod = h.SteadyProducer(kafka.bootstrap, TOPIC, 300, users=100)
time.sleep(3)
samples = ""
for _ in range(30):
    samples += "R" if h.http_get(port, "/readyz")[0] == 200 else "u"
    time.sleep(0.5)
prod.stop()
errors = h.metric(port, 'leanbridge_requests_total{status="error"}')
ok = h.metric(port, 'leanbridge_requests_total{status="200"}')
h.log(f"/readyz samples under 30% cut requests: {samples}; requests: {ok:.0f} answered 200, "
      f"{errors:.0f} with no answer")
h.check(errors > 0 and ok > 0, "no request was cut, or none answered: nothing was tested")
h.check("u" not in samples, f"/readyz unready while the API answered most requests: {samples}")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
sandbox.stop()

# 2. Every attempt cut, then a quiet topic.
sandbox = h.Sandbox(h.APPS, wd, name="sandbox2", extra=["--pdrop", "1"], action_log=False)
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen=f"127.0.0.1:{port}",
                                        batch_max_wait_ms=100, batch_linger_ms=10,
                                        retry_max_attempts=1, api_timeout_hold_ms=2000))
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "ready")
lines, _ = h.make_events(5, users=2, seed=31)
h.produce(kafka.bootstrap, TOPIC, lines)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60,
           "the cut events dead-lettered and committed")
dead = h.metric(port, 'leanbridge_actions_dead_lettered_total{stage="retries_exhausted"}')
h.check(dead >= 1, f"{dead} dead-lettered as retries_exhausted: nothing was tested")
done = time.monotonic()
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 5,
           "/readyz 200 on a quiet topic once nothing is left to send")
h.log(f"ready {time.monotonic() - done:.1f} s after the last event was done")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
