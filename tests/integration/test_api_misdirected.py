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
and a bridge with the right api.url then delivers every event.

But the API's own word about one app is that app's: an API that answers
404 {"response":[{"success":false,"error":{"message":"App not found"}}]}
for app_beta and 200 for app_alpha. A review of the first version found
app_beta's 404s put the bridge in outage mode: every app paused, app_beta
retried for ever. Passes when app_beta's events are dead-lettered (stage
http), app_alpha's delivered, and outage mode never on."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

TOPIC, TOPIC2, DLQ = "events", "events2", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, TOPIC2: 2, DLQ: 1})
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

# One app's 404 from the API itself.
accepted = {"app_alpha": 0, "app_beta": 0}


class OneAppUnknown(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["appId"] == "app_beta":
            out = b'{"response":[{"success":false,"error":{"message":"App not found"}}]}'
            self.send_response(404)
        else:
            accepted[body["appId"]] += len(body["data"])
            out = json.dumps({"response": [{"success": True}] * len(body["data"])}).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


api = ThreadingHTTPServer(("127.0.0.1", 0), OneAppUnknown)
threading.Thread(target=api.serve_forever, daemon=True).start()
beta, _ = h.make_events(60, users=30, apps={"app_beta": "k"}, seed=3)
alpha, _ = h.make_events(20, users=10, apps={"app_alpha": "k"}, seed=4)
h.produce(kafka.bootstrap, TOPIC2, beta + alpha)
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC2, DLQ, group="lbtest2",
                             batch_max_users=5, metrics_listen=f"127.0.0.1:{port}")
settings["api.url"] = f"http://127.0.0.1:{api.server_port}/api?action=multi"
one = h.Bridge(wd, settings, name="one")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest2", TOPIC2), 60, "all committed")
outage = h.metric(port, "leanbridge_api_outage")
rc = one.stop()
dead = [r for r in h.read_topic(kafka.bootstrap, DLQ)
        if r["headers"].get("leanbridge.source.topic") == TOPIC2]
stages = {r["headers"].get("leanbridge.error.stage") for r in dead}
h.log(f"one app unknown: {len(dead)} dead-lettered {stages}, accepted {accepted}, outage "
      f"{outage}, exit {rc}; outage mode entered: {'outage mode' in one.log_text()}")
h.check(len(dead) == 60 and stages == {"http"}, f"app_beta's 60 events not dead-lettered at "
        f"stage http: {len(dead)} {stages}")
h.check(accepted["app_alpha"] == 20, f"app_alpha delivered {accepted['app_alpha']} of 20")
h.check("API outage" not in one.log_text(), "one app's 404 put the bridge in outage mode")
h.check(rc == 0, f"bridge exit code {rc}")
api.shutdown()
kafka.stop()
print("1 passed, 0 failed")
