"""The dead-letter stages that need a response, with their headers:
- `api`: an action the API answers success:false for (error.message is the
  API's message, http.status 200, attempts 1);
- `http`, 403 that says the key is wrong: dead-lettered whole, never split
  (every action went in exactly one request: attempts 1);
- `http`, another 4xx (400 App not found);
while good events around them are delivered and offsets reach the end."""
import json

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
# The sandbox knows app_alpha with its key, app_beta with another key, and
# not app_gamma.
sandbox = h.Sandbox({"app_alpha": h.APPS["app_alpha"], "app_beta": "another-key"},
                    wd, extra=["--fail-event", "Rejected"])
lines, events = h.make_events(600, users=60, seed=31)
rejected = []
for i in range(5):
    ev = {"appId": "app_alpha", "userId": f"rej-{i}", "action": "track",
          "event": "Rejected", "eid": f"rej-{i}"}
    rejected.append(ev)
    lines.append(f"rej-{i}\t{json.dumps(ev)}")
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")

dlq = h.read_topic(kafka.bootstrap, DLQ)
by_app = {}
for r in dlq:
    by_app.setdefault(json.loads(r["value"])["appId"], []).append(r)
want = {
    "app_beta": ("http", "403", "HTTP 403: Invalid access key"),
    "app_gamma": ("http", "400", "HTTP 400: App not found"),
}
for app, (stage, status, message) in want.items():
    n = sum(1 for e in events if e["appId"] == app)
    recs = by_app.get(app, [])
    h.check(len(recs) == n, f"{app}: {len(recs)} dead letters, want {n}")
    for r in recs:
        hd = r["headers"]
        h.check(hd.get("leanbridge.error.stage") == stage, f"{app}: {hd}")
        h.check(hd.get("leanbridge.error.http.status") == status, f"{app}: {hd}")
        h.check(hd.get("leanbridge.error.message") == message, f"{app}: {hd}")
        h.check(hd.get("leanbridge.app.id") == app, f"{app}: {hd}")
        h.check(hd.get("leanbridge.attempts") == "1",
                f"{app}: carried by {hd.get('leanbridge.attempts')} requests (split?)")
alpha = by_app.get("app_alpha", [])
h.check(len(alpha) == len(rejected), f"app_alpha: {len(alpha)} dead letters")
for r in alpha:
    hd = r["headers"]
    h.check(hd.get("leanbridge.error.stage") == "api", f"{hd}")
    h.check(hd.get("leanbridge.error.message") == "Rejected event Rejected", f"{hd}")
    h.check(hd.get("leanbridge.error.http.status") == "200", f"{hd}")
    h.check(hd.get("leanbridge.attempts") == "1", f"{hd}")
beta_requests = [r for r in sandbox.requests() if r["appId"] == "app_beta"]
h.check(all(r["status"] == 403 for r in beta_requests), "app_beta answered other than 403")
good = [e for e in events if e["appId"] == "app_alpha"]
counts = h.check_invariants(good, sandbox, [], allow_dup=False)
h.check(counts["delivered"] == len(good), f"{counts}")
h.log(f"dlq stages: {len(dlq)} dead letters ({ {a: len(r) for a, r in by_app.items()} }), "
      f"{len(beta_requests)} app_beta request(s); {counts}")
print("1 passed, 0 failed")
