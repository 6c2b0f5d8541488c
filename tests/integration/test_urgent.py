"""Latency where it matters (issue 25), on the real binary: an urgent
action (batch.urgent) sends its user within batch.linger.ms with the user's
held actions, in order, while other users keep waiting for the budget; a
session's end (stop, on by default) does the same; a user already at the
API waits for its answer first (the sandbox answers in 1.5 s; no overlap);
an app's own budget from the apps file rules its actions, and a changed
file (SIGHUP) changes it without a restart; --check-config prints each
app's effective settings; the sent_early reasons and the urgent wait
histogram count what happened."""
import json
import os
import signal
import subprocess
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
BUDGET_MS = 60000  # for all apps: nothing here may wait for it
LINGER_MS = 300


def write_apps(path, extra):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{a}:{k}\n" for a, k in h.APPS.items()) + extra)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "1500"])
apps_file = os.path.join(wd, "apps")
write_apps(apps_file, "app.app_beta.batch.max.wait.ms = 4000\n")
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings.update({"apps": "@" + apps_file, "batch.max.wait.ms": str(BUDGET_MS),
                 "batch.linger.ms": str(LINGER_MS),
                 "batch.urgent": "event:Purchase"})

# --check-config: one line per app with its settings and their origin.
args = [h.BRIDGE, "--check-config"]
for k, v in settings.items():
    args += ["-X", f"{k}={v}"]
p = subprocess.run(args, capture_output=True, text=True, env=h.clean_env(), timeout=30)
h.check(p.returncode == 0, f"--check-config failed: {p.stderr}")
h.check("app app_beta: batch.max.wait.ms 4000 (apps file line 4), batch.urgent "
        "event:Purchase (all apps), batch.session.end stop (all apps)" in p.stdout,
        f"--check-config prints app_beta's settings: {p.stdout}")
h.check(f"app app_alpha: batch.max.wait.ms {BUDGET_MS} (all apps)" in p.stdout,
        "--check-config prints app_alpha's budget")
bad = subprocess.run(args + ["-X", "app.app_gamma.batch.max.wait.ms=100"],
                     capture_output=True, text=True, env=h.clean_env(), timeout=30)
h.check(bad.returncode == 2 and "'app.app_gamma.batch.max.wait.ms' (100) must be >= "
        "'batch.linger.ms' (300)" in bad.stderr, f"a bad budget names its key: {bad.stderr}")

bridge = h.Bridge(wd, settings)
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "ready")
seq, produced_at = {}, {}


def send(app, user, action, event=None):
    s = seq.get(user, 0)
    seq[user] = s + 1
    ev = {"appId": app, "userId": user, "action": action, "eid": f"{user}-{s}",
          "params": {"seq": s}}
    if event:
        ev["event"] = event
    h.produce(kafka.bootstrap, TOPIC, [f"{user}\t{json.dumps(ev)}"])
    produced_at[ev["eid"]] = time.monotonic()
    return ev["eid"]


def received():
    return {a["action"]["eid"]: a for a in sandbox.accepted()}


def arrive(eids, within, what):
    h.wait_for(lambda: all(e in received() for e in eids), within, what)


# An urgent action: its user goes with what it holds; another user waits.
held = [send("app_alpha", "waiter", "start"), send("app_alpha", "waiter", "track", "Level")]
u1 = [send("app_alpha", "buyer", "start"), send("app_alpha", "buyer", "track", "Level"),
      send("app_alpha", "buyer", "track", "Purchase")]
arrive(u1, 15, "the buyer's three actions (urgent)")
# The buyer is at the API for 1.5 s: a second urgent action waits for it.
u1b = send("app_alpha", "buyer", "track", "Purchase")
arrive([u1b], 15, "the buyer's second urgent action")

# A session's end: the user goes at once too.
s1 = [send("app_alpha", "leaver", "start"), send("app_alpha", "leaver", "stop")]
arrive(s1, 15, "the leaver's session (session end)")

# app_beta's own budget (4 s from the apps file), not the 60 s of all apps.
b1 = send("app_beta", "beta-user", "start")
arrive([b1], 20, "app_beta's action within its own budget")
h.check(not any(e in received() for e in held),
        "the waiter (no urgent action, no session end) was sent before its budget")

# A new budget for app_gamma from the file, on SIGHUP, without a restart.
write_apps(apps_file, "app.app_beta.batch.max.wait.ms = 4000\n"
                      "app.app_gamma.batch.max.wait.ms = 2000\n")
bridge.proc.send_signal(signal.SIGHUP)
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reloads_total") == 1, 20, "the reload")
g1 = send("app_gamma", "gamma-user", "start")
arrive([g1], 20, "app_gamma's action within its new budget")
h.check(not any(e in received() for e in held), "the waiter is still held")

got = received()
for user in ("buyer", "leaver"):
    seqs = [a["action"]["params"]["seq"] for a in sandbox.accepted()
            if a["action"]["userId"] == user]
    h.check(seqs == sorted(seqs), f"{user}'s actions in order: {seqs}")
st = sandbox.stats()
h.check(st["user_overlap"] == 0, f"a user in two requests at once ({st['user_overlap']})")
urgent = h.metric(port, 'leanbridge_actions_sent_early_total{reason="urgent"}')
ended = h.metric(port, 'leanbridge_actions_sent_early_total{reason="session_end"}')
h.check(urgent == 4, f"sent early for urgent: {urgent}, want 4 (the buyer's)")
h.check(ended == 2, f"sent early for a session end: {ended}, want 2 (the leaver's)")
count = h.metric(port, "leanbridge_urgent_action_wait_seconds_count")
h.check(count == 2, f"urgent waits observed: {count}, want 2")
within = h.metric(port, 'leanbridge_urgent_action_wait_seconds_bucket{le="2"}')
h.check(within == 2, f"urgent waits within 2 s: {within} of 2 (linger 0.3 s + 1.5 s at the API)")

h.check(bridge.stop() == 0, "exit 0")
log = bridge.log_text()
h.check("SIGHUP: apps file reloaded" in log, "the reload is logged")
h.check("app app_gamma: batch.max.wait.ms 2000 (apps file line 5)" in log,
        "the new policy is logged")
for k in h.APPS.values():
    h.check(k not in log, "a client key in the log")
h.check(not h.read_topic(kafka.bootstrap, DLQ), "no dead letters")
h.log(f"urgent {urgent:.0f}, session end {ended:.0f} actions sent early; "
      f"the waiter held; per-app budgets and their reload")
print("1 passed, 0 failed")
