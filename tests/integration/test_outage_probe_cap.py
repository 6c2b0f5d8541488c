"""In outage mode a request is retried no later than the probes' cap
(min(retry.backoff.max.ms, 5 s)), whatever backoff its attempts had reached
before: the README promises full speed again within about 5 s of the API's
recovery. With retry.backoff.initial.ms at 8 s, the requests caught by a
503 window have reached a backoff of 8 to 16 s when outage mode begins;
every retry the bridge schedules after that must be within the cap (its
log says each one: 'retry N in M ms'), and everything is delivered once the
window ends."""
import re
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
WINDOW_S = 30
CAP_MS = 5000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--fail-window", f"0:{WINDOW_S * 1000}:503"])
t_sandbox = time.time()
lines, events = h.make_events(200, users=40, seed=77)
h.produce(kafka.bootstrap, TOPIC, lines)
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, metrics_listen=f"127.0.0.1:{port}",
    retry_backoff_initial_ms=8000, retry_backoff_max_ms=60000, retry_max_attempts=-1))
h.wait_for(lambda: h.metric(port, "leanbridge_api_outage") == 1, WINDOW_S,
           "the bridge to enter outage mode")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), WINDOW_S + 120,
           "committed offsets at the end of every partition")
log = bridge.log_text()
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
outage_at = log.index("API outage:")
during = re.findall(r"retry \d+ in (\d+) ms", log[outage_at:log.index("outage over")])
h.log(f"retries scheduled in outage mode: {len(during)}, delays {during[:12]} ms")
h.check(during, "no retry was scheduled in outage mode")
h.check(all(int(ms) <= CAP_MS for ms in during),
        f"retries in outage mode past the {CAP_MS} ms cap: {during}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
counts = h.check_invariants(events, sandbox, dlq)
h.check(counts["delivered"] == len(events) and not dlq, f"{counts}")
print("1 passed, 0 failed")
