"""A client key reloaded longer while an action sized for the old one is
held: the action no longer fits batch.max.bytes with the new key. It must
still go (alone, over the cap by the key's growth) and be committed; before
the fix the bridge sent an empty request ("data":[]) on every turn, forever,
and every user due after it waited with it."""
import json
import os
import signal

import harness as h

TOPIC, DLQ = "events", "events.dlq"
CAP = 4096  # batch.max.bytes
GROWTH = 600  # bytes the key grows by
APP = sorted(h.APPS)[0]


def event(uid, eid, pad):
    return {"appId": APP, "userId": uid, "action": "track", "event": "Big",
            "eid": eid, "params": {"pad": "x" * pad}}


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
api_port = h.free_port()
old_keys = dict(h.APPS)
new_keys = {a: k + "-" + "k" * (GROWTH - 1) for a, k in h.APPS.items()}
sandbox = h.Sandbox(old_keys, wd, name="sb1", extra=["--port", str(api_port)])
apps_file = os.path.join(wd, "apps")
h.write_apps(apps_file, old_keys)
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings.update({"apps": "@" + apps_file, "batch.max.bytes": str(CAP),
                 "batch.max.wait.ms": "6000"})  # held until the reload has landed
bridge = h.Bridge(wd, settings)

# The request's overhead with the old key is about 100 + the key: an event
# 350 bytes under the cap fits it, and not the new key's (600 more).
big = event("user-big", "e-big", CAP - 350 - 100)
line = json.dumps(big, separators=(",", ":"))
h.check(len(line) + 100 + len(old_keys[APP]) <= CAP - 200, "the event fits the old key")
h.check(len(line) + 100 + len(new_keys[APP]) > CAP + 100, "the event does not fit the new key")
small = event("user-small", "e-small", 10)
h.produce(kafka.bootstrap, TOPIC, [f"user-big\t{line}",
                                   f"user-small\t{json.dumps(small, separators=(',', ':'))}"])
h.wait_for(lambda: h.metric(port, "leanbridge_pending_actions") == 2, 30, "both events held")

h.write_apps(apps_file, new_keys)
bridge.proc.send_signal(signal.SIGHUP)
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reloads_total") == 1, 20, "the SIGHUP reload")
h.check(h.metric(port, "leanbridge_pending_actions") == 2, "both still held at the reload")
sandbox.stop()
sandbox = h.Sandbox(new_keys, wd, name="sb2", extra=["--port", str(api_port)])

h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "both committed")
got = {r["action"]["eid"] for r in sandbox.accepted()}
h.check(got == {"e-big", "e-small"}, f"the sandbox accepted {sorted(got)}")
reqs = sandbox.requests()
h.check(all(r["actions"] > 0 for r in reqs),
        f"an empty request was sent: {[r for r in reqs if r['actions'] == 0][:3]}")
h.check(bridge.stop() == 0, "exit 0")
dead = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dead, f"{len(dead)} dead letters")
h.log(f"{len(reqs)} requests with the new key, none empty; both events delivered")
print("1 passed, 0 failed")
