"""A key rotation that reaches the API before the bridge has reloaded loses
nothing to the dead-letter topic. The apps file is checked every 5 s and
read once it is the same twice (so 5 to 10 s after a Secret update), and a
request refused with "Invalid access key" was dead-lettered at its first
attempt: in a review's run every event produced between the API's switch
and the reload (100 of 100) went to the DLQ. Now a refused key reads the
apps file at once (at most once a second) and, when the app's key has
changed since the request was encoded, sends it again with the new key
(the attempt not counted); with no newer key it is dead-lettered as
before.

The bridge starts with gen1 keys, the sandbox accepts gen1; the file is
rewritten with gen2 and the sandbox restarted with gen2 only, and 100
events are produced at once, before the watch could reload. Passes when
every event is delivered and none dead-lettered; then, with the sandbox
on gen3 keys the file does not have, an event is dead-lettered (stage
http) after its one refused attempt.

Last, a refusal that comes after a shutdown's drain ran out is not sent
again (a review found it was: the bridge then left while its new request
ran at the API, and the next owner sent the same actions): an API that
answers after 3 s, refusing every key but gen3's; SIGTERM with requests on
the wire and the file switched to gen3. Passes when no gen3 request
reaches that API."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

TOPIC, DLQ = "events", "events.dlq"


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
api_port = h.free_port()
apps_file = os.path.join(wd, "apps")
h.write_apps(apps_file, h.key_generation(1))
sandbox = h.Sandbox(h.key_generation(1), wd, name="gen1", extra=["--port", str(api_port)])
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings["apps"] = "@" + apps_file
bridge = h.Bridge(wd, settings)
first, ev1 = h.make_events(20, users=10, seed=1)
h.produce(kafka.bootstrap, TOPIC, first)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "gen1 delivered")

# The rotation reaches the API and the file together; events right away.
h.write_apps(apps_file, h.key_generation(2))
sandbox.stop()
sandbox = h.Sandbox(h.key_generation(2), wd, name="gen2", extra=["--port", str(api_port)])
second, ev2 = h.make_events(100, users=30, seed=2)
h.produce(kafka.bootstrap, TOPIC, second)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "gen2 committed")
dead = h.read_topic(kafka.bootstrap, DLQ)
log = bridge.log_text()
h.log(f"after the rotation: {sandbox.accepted_count()} accepted, {len(dead)} dead-lettered; "
      f"refused then sent again: {'sending the request again' in log}")
h.check("Invalid access key" in log, "no request was refused for its key: nothing was tested")
h.check(not dead, f"{len(dead)} events dead-lettered by a rotation the bridge had not "
        "reloaded yet")
h.check(sandbox.accepted_count() == 100, f"{sandbox.accepted_count()} of 100 accepted")

# A key the file does not have: dead-lettered, as before.
sandbox.stop()
sandbox = h.Sandbox(h.key_generation(3), wd, name="gen3", extra=["--port", str(api_port)])
third, ev3 = h.make_events(1, users=1, seed=3)
h.produce(kafka.bootstrap, TOPIC, third)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "gen3 committed")
dead = h.read_topic(kafka.bootstrap, DLQ)
h.check(len(dead) == 1 and dead[0]["headers"].get("leanbridge.error.stage") == "http",
        f"a refused key with no newer one: {[r['headers'] for r in dead]}")
h.check(bridge.stop() == 0, "exit 0")
log = bridge.log_text()
sandbox.stop()

# A refused key at the end of a shutdown: not sent again.
keys_seen = []


class SlowKeyCheck(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        keys_seen.append(body["clientKey"])
        time.sleep(3)
        if body["clientKey"].endswith("-gen3"):
            out, status = {"response": [{"success": True}] * len(body["data"])}, 200
        else:
            out, status = {"error": {"message": "Invalid access key"}}, 403
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


api = ThreadingHTTPServer(("127.0.0.1", 0), SlowKeyCheck)
threading.Thread(target=api.serve_forever, daemon=True).start()
h.write_apps(apps_file, h.key_generation(2))
fourth, _ = h.make_events(10, users=5, seed=4)
h.produce(kafka.bootstrap, TOPIC, fourth)
settings.update({"api.url": f"http://127.0.0.1:{api.server_port}/api?action=multi",
                 "shutdown.timeout.ms": "500", "api.timeout.ms": "5000",
                 "api.timeout.hold.ms": "0"})
last = h.Bridge(wd, settings, name="last")
h.wait_for(lambda: keys_seen, 60, "requests at the API")
h.write_apps(apps_file, h.key_generation(3))
rc = last.stop()
time.sleep(1)
lastlog = last.log_text()
h.log(f"keys at the slow API: {len(keys_seen)} requests, "
      f"{sum(k.endswith('-gen3') for k in keys_seen)} with gen3; exit {rc}")
h.check(rc == 0, f"bridge exit code {rc}")
h.check("Invalid access key" in lastlog, "no key refused during the shutdown: nothing was tested")
h.check(not any(k.endswith("-gen3") for k in keys_seen),
        "a refused request was sent again after the shutdown's drain had run out")
api.shutdown()
for gen in (1, 2, 3):
    for k in h.key_generation(gen).values():
        h.check(k not in log and k not in lastlog, "a client key in the log")
kafka.stop()
print("1 passed, 0 failed")
