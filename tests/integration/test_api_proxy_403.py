"""A 403 that is not the API's word dead-letters nothing. An egress proxy
or a firewall in front of the API (Squid, nginx, a WAF) refuses requests
with a 403 and an HTML page: every request gets it, whatever its actions.
Before, a 403 was read as the API's "over the limits": each request was
split in halves down to single actions, and each of those dead-lettered
(stage http), so a proxy rule sent the whole backlog to the dead-letter
topic at full speed, after paying twice the requests. A 403 whose body
carries no message of the API (no JSON `error.message`) is now retried,
counts as a failure for outage mode (the input pauses), and is never
split; the API's own 403s (over the limits, a wrong key, an unknown app)
are handled as before (test_split_403, test_key_rotation,
test_api_misdirected).

Passes when, 15 s into a proxy answering every request 403 with HTML,
nothing was dead-lettered, no request was split, outage mode is on and
the log says a proxy may be refusing; then, with the proxy letting
requests through, every event is delivered and committed. A review of the
first version found that a firewall refusing one user's events by their
content (others answered 200) then had whole requests retried until their
retries ran out, every user in them dead-lettered: such a 403, with a 2xx
within the outage window, is split as before (the second part)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

TOPIC, DLQ = "events", "events.dlq"
PAGE = (b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1>"
        b"Request forbidden by administrative rules.</body></html>")
state = {"refuse": True, "refused": 0, "sizes": {}, "accepted": 0}


class Front(BaseHTTPRequestHandler):
    """A proxy before the API: refuses (403, an HTML page) the requests
    refused(body, raw) names, answers the others 200, every action
    applied (accepted(body))."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        if self.refused(body, raw):
            out, status, ctype = PAGE, 403, "text/html"
        else:
            self.accepted(body)
            out = json.dumps({"response": [{"success": True}] * len(body["data"])}).encode()
            status, ctype = 200, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Proxy(Front):
    def refused(self, body, raw):
        if state["refuse"]:
            state["refused"] += 1
            state["sizes"].setdefault(body["appId"], set()).add(len(body["data"]))
        return state["refuse"]

    def accepted(self, body):
        state["accepted"] += len(body["data"])


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, "events2": 2, DLQ: 1})
lines, events = h.make_events(60, users=12, seed=29)
h.produce(kafka.bootstrap, TOPIC, lines)
api = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Thread(target=api.serve_forever, daemon=True).start()
port = h.free_port()

sandbox = h.Sandbox(h.APPS, wd)  # for bridge_settings' defaults only
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings["api.url"] = f"http://127.0.0.1:{api.server_port}/api?action=multi"
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: state["refused"] >= 3, 60, "requests refused by the proxy")
time.sleep(15)
dead = h.read_topic(kafka.bootstrap, DLQ)
outage = h.metric(port, "leanbridge_api_outage")
splits = h.metric(port, "leanbridge_request_splits_total")
log = bridge.log_text()
h.log(f"proxy 403: {state['refused']} refused (sizes by app {state['sizes']}), "
      f"{len(dead)} dead-lettered, outage {outage}")
h.check(not dead, f"{len(dead)} events dead-lettered because a proxy answered 403: "
        f"{[r['headers'].get('leanbridge.error.message') for r in dead[:3]]}")
h.check(splits == 0, f"{splits} request(s) split after a proxy's 403: sizes by app "
        f"{state['sizes']}")
h.check(outage == 1, f"outage mode not on with every request refused: {outage}")
h.check("a proxy before the API refused it?" in log,
        "the log does not say a proxy may be refusing")

state["refuse"] = False
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "all committed once the proxy lets requests through")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
h.check(state["accepted"] >= len(events), f"accepted {state['accepted']} of {len(events)}")
h.check(not h.read_topic(kafka.bootstrap, DLQ), "dead letters written")
api.shutdown()

# A firewall that refuses by content (a WAF rule matching one user's
# events), answering the others 200: there a split still isolates the
# refused action, as for the API's own 403, while the rest is delivered.
# Passes when only user-3's events are dead-lettered (stage http) and
# outage mode never came on.
TOPIC2 = "events2"
BLOCKED = '"userId":"user-3"'
waf = {"accepted": set()}


class Waf(Front):
    def refused(self, body, raw):
        return BLOCKED.encode() in raw

    def accepted(self, body):
        waf["accepted"].update(a["eid"] for a in body["data"])


lines2, events2 = h.make_events(80, users=10, seed=31)
h.produce(kafka.bootstrap, TOPIC2, lines2)
api = ThreadingHTTPServer(("127.0.0.1", 0), Waf)
threading.Thread(target=api.serve_forever, daemon=True).start()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC2, DLQ, group="lbtest2",
                             metrics_listen=f"127.0.0.1:{port}")
settings["api.url"] = f"http://127.0.0.1:{api.server_port}/api?action=multi"
bridge = h.Bridge(wd, settings, name="waf")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest2", TOPIC2), 120, "all committed")
log = bridge.log_text()
rc = bridge.stop()
dead = [r for r in h.read_topic(kafka.bootstrap, DLQ)
        if r["headers"].get("leanbridge.source.topic") == TOPIC2]
dead_eids = {json.loads(r["value"])["eid"] for r in dead}
blocked = {e["eid"] for e in events2 if e["userId"] == "user-3"}
stages = {r["headers"].get("leanbridge.error.stage") for r in dead}
h.log(f"waf: {len(dead)} dead-lettered {stages}, {len(blocked)} blocked, "
      f"{len(waf['accepted'])} accepted")
h.check(blocked and dead_eids == blocked and stages == {"http"},
        f"dead-lettered {len(dead_eids)} ({stages}), want only user-3's {len(blocked)}")
h.check(waf["accepted"] == {e["eid"] for e in events2} - blocked,
        f"accepted {len(waf['accepted'])} of {len(events2) - len(blocked)}")
h.check("API outage" not in log, "a firewall refusing one user's events put the bridge in "
        "outage mode")
h.check(rc == 0, f"bridge exit code {rc}")
api.shutdown()
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
