"""A revocation that gives up actions whose request body is still being
uploaded: the body is written from the actions as libcurl sends it (no copy
is held), so the part not yet sent must be kept before they are freed. The
API here reads request bodies slowly (16 KiB every 20 ms, a small receive
buffer) and the requests are megabytes, so instance a's first request is
mid-upload when instance b joins and a's revocation gives up (its
rebalance.timeout.ms is far below the upload's time). Every body the API
receives must be valid JSON of the announced length whose actions are the
events produced (with "time" added where they had none); both instances
exit 0 and every offset is committed, nothing dead-lettered. Run on the
sanitized build (CI's), a freed action read by the upload is an error."""
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N, PAD = 160, 60000
APP, KEY = "app_alpha", h.APPS["app_alpha"]

bodies, errors = [], []
uploading = threading.Event()  # a body is being read


class SlowApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        got = bytearray()
        uploading.set()
        while len(got) < n:
            chunk = self.rfile.read(min(16384, n - len(got)))
            if not chunk:
                break
            got += chunk
            time.sleep(0.02)
        uploading.clear()
        try:
            body = json.loads(got)
            actions = body["data"]
        except (ValueError, KeyError, TypeError) as e:
            errors.append(f"body of {len(got)}/{n} bytes is not a request: {e}")
            actions = []
        bodies.append(actions)
        answer = json.dumps({"response": [{"success": True}] * len(actions)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class SmallBufferServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # inherited by accepted sockets: the sender's writes stall early
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        super().server_bind()


api = SmallBufferServer(("127.0.0.1", 0), SlowApi)
threading.Thread(target=api.serve_forever, daemon=True).start()


class Api:  # what bridge_settings reads of a sandbox
    url = f"http://127.0.0.1:{api.server_address[1]}/api?action=multi"


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
events, lines = [], []
for i in range(N):
    ev = {"appId": APP, "userId": f"user-{i % 8}", "action": "track",
          "event": "e", "eid": f"e-{i}", "params": {"pad": "x" * PAD}}
    if i % 3 == 0:
        ev["time"] = 1700000000 + i
    events.append(ev)
    lines.append(f"user-{i % 8}\t{json.dumps(ev, separators=(',', ':'))}")
h.produce(kafka.bootstrap, TOPIC, lines)

settings = h.bridge_settings(kafka.bootstrap, Api, TOPIC, DLQ,
                             apps=f"{APP}:{KEY}", rebalance_timeout_ms=300,
                             api_timeout_ms=60000, batch_max_bytes=16777216,
                             batch_linger_ms=200, batch_max_wait_ms=2000)
a = h.Bridge(wd, settings, name="a")
h.wait_for(uploading.is_set, 60, "instance a's first request at the API")
b = h.Bridge(wd, settings, name="b")
# said as the revocation gives its actions up (release_partitions)
h.wait_for(lambda: "still under way at revocation" in a.log_text(), 60,
           "instance a's revocation giving up its request", interval=0.05)
gave_up = uploading.is_set()
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 300,
           "committed offsets at the end of every partition")
# b leaves first; a is stopped once it holds b's partitions too, not in
# the middle of that rebalance (a SIGTERM there is another test's subject)
assigned_before = a.log_text().count("assigned")
rc_b = b.stop()
h.wait_for(lambda: a.log_text().count("assigned") > assigned_before, 60,
           "instance a taking b's partitions")
time.sleep(1)
rc_a = a.stop()
api.shutdown()
h.check(rc_a == 0 and rc_b == 0, f"exit codes a={rc_a} b={rc_b}")
h.check(gave_up, "the revocation should give up while a body is uploaded")
h.check(re.search(r"[1-9][0-9]* in-flight given up", a.log_text()),
        "instance a should give up actions of its request on the wire")
h.check(not errors, f"bodies the API could not read: {errors[:3]}")
by_eid = {e["eid"]: e for e in events}
seen = set()
for actions in bodies:
    for act in actions:
        want = dict(by_eid.get(act.get("eid"), {}))
        if "time" not in want:
            want["time"] = act.get("time")
        h.check(isinstance(act.get("time"), (int, float)) and act == want,
                f"an action the API got is not an event produced: "
                f"{json.dumps(act)[:200]}")
        seen.add(act["eid"])
h.check(seen == set(by_eid), f"{len(by_eid) - len(seen)} event(s) never reached the API")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered: {[r['headers'] for r in dlq[:3]]}")
h.log(f"revocation mid-upload: {len(bodies)} request(s), "
      f"{sum(len(x) for x in bodies)} actions for {N} events")
print("1 passed, 0 failed")
