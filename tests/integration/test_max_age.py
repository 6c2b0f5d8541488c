"""input.max.age.ms: an event older than the bound (by its own time, UNIX
seconds) is dead-lettered with stage too_old and never sent; one without a
time is judged by its Kafka timestamp (just written: fresh); the others are
delivered and every offset is committed. `leanbridge replay` with the same
bound skips the too-old dead letters and counts them; without it they go
back."""
import json
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
DAY_MS = 86400 * 1000


def count(out, what):
    for line in out.splitlines():
        if line.strip().startswith(what):
            return int(line.split()[-1])
    return None


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
now = time.time()
lines, events = h.make_events(700, users=60, seed=21)
old, fresh = set(), set()
for i, ev in enumerate(events):
    # make_events gives every 7th event a 2023 time; some get a recent one.
    if "time" in ev and i % 14 == 0:
        ev["time"] = round(now - 3600, 3)  # an hour old: within the bound
        lines[i] = f"{ev['userId']}\t{json.dumps(ev, separators=(',', ':'))}"
    (old if "time" in ev and ev["time"] < now - 8 * 86400 else fresh).add(ev["eid"])
h.check(len(old) > 20 and len(fresh) > 500, f"{len(old)} old, {len(fresh)} fresh")
h.produce(kafka.bootstrap, TOPIC, lines)

bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        input_max_age_ms=str(7 * DAY_MS)))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
h.check(bridge.stop() == 0, "bridge exit code")
dlq = h.read_topic(kafka.bootstrap, DLQ)
dead = {json.loads(r["value"])["eid"]: r for r in dlq}
h.check(set(dead) == old, f"dead-lettered {len(dead)}, want the {len(old)} old ones; "
        f"differ: {sorted(set(dead) ^ old)[:5]}")
for eid, r in dead.items():
    hd = r["headers"]
    h.check(hd.get("leanbridge.error.stage") == "too_old", f"{eid}: {hd}")
    h.check("input.max.age.ms" in hd.get("leanbridge.error.message", ""), f"{eid}: {hd}")
    h.check(hd.get("leanbridge.attempts") == "0", f"{eid}: sent? {hd}")
sent = {a["action"]["eid"] for a in sandbox.accepted()}
h.check(not sent & old, f"{len(sent & old)} old event(s) reached the API")
counts = h.check_invariants(events, sandbox, dlq, allow_dup=False, expect_dead=old)

# Replay with the same bound: skipped and counted; without it: sent back.
rc, out, _ = h.replay(kafka.bootstrap, DLQ, "lbtest", "--dry-run",
                      xs=("-X", f"input.max.age.ms={7 * DAY_MS}"))
h.check(rc == 0 and count(out, "skipped, too old") == len(old) and
        count(out, "would be replayed") == 0, f"replay with the bound:\n{out}")
rc, out, _ = h.replay(kafka.bootstrap, DLQ, "lbtest", "--dry-run")
h.check(rc == 0 and count(out, "skipped, too old") == 0 and
        count(out, "would be replayed") == len(old), f"replay without the bound:\n{out}")
h.log(f"max age: {len(old)} old events dead-lettered (too_old), {counts}")
print("1 passed, 0 failed")
