"""A wrong api.url (or a proxy's credentials) dead-letters nothing. The
statuses that say a request never reached the API's handler (3xx, 401,
404, 405, 407) are what every request would get, whatever its actions:
before, a 404 or 405 dead-lettered each request's actions at once (stage
http),
so a deployment with a mistyped path sent its whole backlog to the
dead-letter topic at full speed. Now they are retried, count as failures
for outage mode, and so pause the input once every request gets them.

The sandbox answers 405 to a POST to any path but /api (404 to other
methods); the bridge's api.url names /wrong. Passes when, 15 s on, nothing was dead-lettered, outage mode is on
(and the log says api.url may be wrong), the bridge exits 0 on SIGTERM,
and a bridge with the right api.url then delivers every event."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(60, users=10, seed=17)
h.produce(kafka.bootstrap, TOPIC, lines)
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings["api.url"] = sandbox.url.replace("/api?", "/wrong?")
h.check(settings["api.url"] != sandbox.url, f"no /api? in {sandbox.url}")
wrong = h.Bridge(wd, settings, name="wrong")
h.wait_for(lambda: sum(h.metric(port, f'leanbridge_requests_total{{status="{s}"}}') or 0
                      for s in (404, 405)) > 0, 60, "requests answered 404 or 405")
time.sleep(15)
dead = h.read_topic(kafka.bootstrap, DLQ)
outage = h.metric(port, "leanbridge_api_outage")
rc = wrong.stop()
log = wrong.log_text()
h.log(f"wrong api.url: {len(dead)} dead-lettered, outage {outage}, exit {rc}")
h.check(not dead, f"{len(dead)} events dead-lettered because api.url was wrong: "
        f"{[r['headers'].get('leanbridge.error.message') for r in dead[:3]]}")
h.check(outage == 1, f"outage mode not on with every request answered 405: {outage}")
h.check("api.url or a proxy before the API is wrong?" in log,
        "the log does not say api.url may be wrong")
h.check(rc == 0, f"bridge exit code {rc}")

right = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ), name="right")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed")
rc = right.stop()
h.check(rc == 0, f"bridge exit code {rc}")
counts = h.check_invariants(events, sandbox, h.read_topic(kafka.bootstrap, DLQ),
                            expect_dead=[])
h.log(f"{counts}")
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
