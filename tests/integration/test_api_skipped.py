"""Delivered means applied. The sandbox answers some actions success:true
with an error (skipped), some with a warning (probably skipped), and the
realistic rule: stop/pauseSession/resumeSession/advance of a user it has
never seen gets "User not found; request skipped.". Every such action must
be in the DLQ (stage api_skipped or api_warning, the API's message), none
counted delivered, every other action delivered, and every offset committed.
Then, with api.accept.warnings=true, warnings count as delivered (and are
still counted as warned) while skips are still dead-lettered."""
import json
import re
import urllib.request

import harness as h

TOPIC, DLQ, DLQ2 = "events", "events.dlq", "events.dlq2"
SKIP_MSG = "Action skipped (injected)"
WARN_MSG = "Action probably skipped (injected warning)"
NOT_FOUND = "User not found; request skipped."


def value(text, series):
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def run(wd, kafka, sandbox, dlq, group, **extra):
    port = h.free_port()
    bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, dlq, group=group,
                                            metrics_listen=f"127.0.0.1:{port}", **extra),
                      name=f"bridge-{group}")
    h.wait_for(lambda: h.all_committed(kafka.bootstrap, group, TOPIC), 180,
               f"{group}: committed offsets at the end of every partition")
    text = scrape(port)
    rc = bridge.stop()
    h.check(rc == 0, f"{group}: bridge exit code {rc}")
    return text, h.read_topic(kafka.bootstrap, dlq)


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 3, DLQ: 1, DLQ2: 1})
lines, events = h.make_events(3000, users=200, seed=15)
# Users the API has never seen: every one of these is "User not found".
ghosts = []
for i, action in enumerate(["stop", "pauseSession", "resumeSession", "advance"] * 10):
    ev = {"appId": "app_alpha", "userId": f"ghost-{i}", "action": action, "eid": f"ghost-{i}",
          "params": {"seq": 0}}
    if action == "advance":
        ev["state"] = "Level 2"
    ghosts.append(ev)
    lines.insert(i * 70, f"ghost-{i}\t{json.dumps(ev, separators=(',', ':'))}")
events += ghosts
h.produce(kafka.bootstrap, TOPIC, lines)

# --- 1. the defaults: skips and warnings are dead letters ---
sandbox = h.Sandbox(h.APPS, wd, extra=["--skip-rate", "0.03", "--warn-rate", "0.02",
                                       "--user-not-found", "--seed", "15"])
text, dlq = run(wd, kafka, sandbox, DLQ, "lbtest")
st = sandbox.stats()
h.check(st["actions_skipped"] > 0 and st["actions_warned"] > 0, f"no skips or warnings: {st}")
applied = {r["action"]["eid"] for r in sandbox.accepted()}
dead = {}
for r in dlq:
    dead[json.loads(r["value"])["eid"]] = r
h.check(not applied & dead.keys(), f"{len(applied & dead.keys())} action(s) both applied and dead")
missing = [e["eid"] for e in events if e["eid"] not in applied and e["eid"] not in dead]
h.check(not missing, f"{len(missing)} action(s) neither applied nor dead-lettered: {missing[:5]}")
h.check(len(dead) == len(dlq), "an action dead-lettered twice")
stages = {}
for eid, r in dead.items():
    hd = r["headers"]
    stage, msg = hd.get("leanbridge.error.stage"), hd.get("leanbridge.error.message")
    stages[stage] = stages.get(stage, 0) + 1
    h.check(hd.get("leanbridge.error.http.status") == "200", f"{eid}: status header {hd}")
    h.check(hd.get("leanbridge.attempts") == "1", f"{eid}: retried? {hd}")
    if stage == "api_skipped":
        h.check(msg == SKIP_MSG, f"{eid}: message {msg!r}")
    else:
        h.check(stage == "api_warning" and msg in (WARN_MSG, NOT_FOUND), f"{eid}: {stage} {msg!r}")
for g in ghosts:
    r = dead.get(g["eid"])
    h.check(r is not None, f"{g['eid']} ({g['action']}) of an unknown user was not dead-lettered")
    h.check(r["headers"]["leanbridge.error.message"] in (NOT_FOUND, SKIP_MSG, WARN_MSG),
            f"{g['eid']}: {r['headers']}")
not_found = sum(1 for r in dlq if r["headers"]["leanbridge.error.message"] == NOT_FOUND)
h.check(not_found >= len(ghosts) - 5, f"only {not_found} 'User not found' dead letters")
delivered = value(text, "leanbridge_actions_delivered_total")
h.check(delivered == len(applied) == st["actions_accepted"],
        f"delivered metric {delivered}, applied {len(applied)}, sandbox {st['actions_accepted']}")
for stage in ("api_skipped", "api_warning"):
    got = value(text, f'leanbridge_actions_dead_lettered_total{{stage="{stage}"}}')
    h.check(got == stages.get(stage, 0), f"{stage}: metric {got}, DLQ {stages.get(stage, 0)}")
h.check(value(text, "leanbridge_actions_warned_total") == stages.get("api_warning", 0),
        "warned counter differs from the warnings dead-lettered")
h.check(stages.get("api_skipped", 0) + stages.get("api_warning", 0) == st["actions_skipped"],
        f"DLQ stages {stages} vs sandbox skipped {st['actions_skipped']}")
h.log(f"defaults: {len(applied)} applied, DLQ stages {stages}, sandbox {st}")
sandbox.stop()

# --- 2. api.accept.warnings=true: warnings delivered, skips still dead ---
sandbox2 = h.Sandbox(h.APPS, wd, name="sandbox2",
                     extra=["--skip-rate", "0.02", "--warn-rate", "0.05", "--seed", "16"])
text2, dlq2 = run(wd, kafka, sandbox2, DLQ2, "lbtest2", api_accept_warnings="true")
st2 = sandbox2.stats()
stages2 = {}
for r in dlq2:
    s = r["headers"]["leanbridge.error.stage"]
    stages2[s] = stages2.get(s, 0) + 1
h.check(set(stages2) == {"api_skipped"}, f"accept warnings: DLQ stages {stages2}")
warned = st2["actions_warned"]
h.check(warned > 0, f"no warnings: {st2}")
h.check(value(text2, "leanbridge_actions_warned_total") == warned, "warned counter")
h.check(value(text2, "leanbridge_actions_delivered_total") == len(events) - stages2["api_skipped"],
        f"accept warnings: delivered {value(text2, 'leanbridge_actions_delivered_total')}")
h.log(f"accept warnings: {warned} warned and delivered, DLQ {stages2}")
print("1 passed, 0 failed")
