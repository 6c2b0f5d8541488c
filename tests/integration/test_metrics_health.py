"""/metrics, /healthz and /readyz during a real run: the counters agree with
what the sandbox saw, the exposition passes `promtool check metrics`, /readyz
turns ready after the group join and unready when the API is unreachable."""
import json
import re
import shutil
import subprocess

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 3000


def value(text, series):
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 3, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--fail-event", "Rejected"])
lines, events = h.make_events(N, users=250, seed=13, tombstones=10)
for i in range(0, N, 100):
    events[i].update(action="track", event="Rejected")
lines = [f"{e['userId']}\t" + json.dumps(e, separators=(",", ":")) for e in events if e] + \
        [l for l in lines if l.endswith("\\N")]
h.produce(kafka.bootstrap, TOPIC, lines)

port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen=f"127.0.0.1:{port}"))
h.wait_for(lambda: h.http_get(port, "/healthz")[0] == 200, 30, "/healthz")
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "/readyz after the group join")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed")

status, text = h.http_get(port, "/metrics")
h.check(status == 200, "/metrics status")
st = sandbox.stats()
with open(sandbox.req_path) as f:
    reqs = [json.loads(l) for l in f if l.strip()]
lookups = sum(r["users"] for r in reqs if r["status"] == 200)
expect = {
    "leanbridge_events_consumed_total": N + 10,
    "leanbridge_events_skipped_total": 10,
    "leanbridge_actions_delivered_total": st["actions_accepted"],
    'leanbridge_actions_dead_lettered_total{stage="api"}': N // 100,
    'leanbridge_requests_total{status="200"}': st["by_status"].get("200", 0),
    "leanbridge_billable_user_lookups_total": lookups,
    "leanbridge_inflight_requests": 0,
    "leanbridge_pending_actions": 0,
    "leanbridge_partitions_assigned": 3,
    "leanbridge_batch_actions_count": st["by_status"].get("200", 0),
}
for series, want in expect.items():
    got = value(text, series)
    h.check(got == want, f"{series} = {got}, want {want}")
# Nothing held: what is left is the user table's room (it never shrinks).
held, limit = value(text, "leanbridge_held_bytes"), value(text, "leanbridge_held_bytes_limit")
h.check(held is not None and 0 < held < 1 << 20, f"leanbridge_held_bytes = {held} when idle")
h.check(limit is not None and limit >= 64 << 20, f"leanbridge_held_bytes_limit = {limit}")
h.check('leanbridge_build_info{version="' in text, "build_info")
h.check("SECRET" not in text, "a client key in /metrics")
if shutil.which("promtool"):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    h.check(p.returncode == 0, f"promtool check metrics: {p.stdout.decode()}")
    h.log("promtool check metrics: OK")
else:
    h.fail("promtool is not installed (Debian package prometheus): scripts/test.sh installs it")

# The API unreachable: a transport failure makes the bridge unready.
sandbox.stop()
more, _ = h.make_events(20, users=5, seed=99)
h.produce(kafka.bootstrap, TOPIC, more)
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 503, 60, "/readyz 503 with the API unreachable")
code, body = h.http_get(port, "/readyz")
h.check("API" in body, f"/readyz reason: {body}")
h.check(h.http_get(port, "/healthz")[0] == 200, "/healthz stays 200 while the loop runs")
h.check(value(h.http_get(port, "/metrics")[1], 'leanbridge_requests_total{status="error"}') > 0,
        "transport errors are counted as status=error")
rc = bridge.stop()
h.check(rc == 0, f"exit {rc}")
h.log(f"metrics and health: counters match the sandbox ({st['requests']} requests, {lookups} lookups)")
print("1 passed, 0 failed")
