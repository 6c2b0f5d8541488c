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
requests through, every event is delivered and committed."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

TOPIC, DLQ = "events", "events.dlq"
PAGE = (b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1>"
        b"Request forbidden by administrative rules.</body></html>")
state = {"refuse": True, "refused": 0, "sizes": {}, "accepted": 0}


class Proxy(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if state["refuse"]:
            state["refused"] += 1
            state["sizes"].setdefault(body["appId"], set()).add(len(body["data"]))
            out = PAGE
            self.send_response(403)
            self.send_header("Content-Type", "text/html")
        else:
            state["accepted"] += len(body["data"])
            out = json.dumps({"response": [{"success": True}] * len(body["data"])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
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
log = bridge.log_text()
h.log(f"proxy 403: {state['refused']} refused (sizes by app {state['sizes']}), "
      f"{len(dead)} dead-lettered, outage {outage}")
h.check(not dead, f"{len(dead)} events dead-lettered because a proxy answered 403: "
        f"{[r['headers'].get('leanbridge.error.message') for r in dead[:3]]}")
h.check(all(len(sizes) == 1 and min(sizes) > 1 for sizes in state["sizes"].values()),
        f"requests split after a proxy's 403: sizes by app {state['sizes']}")
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
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
