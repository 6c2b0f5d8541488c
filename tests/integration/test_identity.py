"""A deviceId alone is the user's id to the API: an event with userId "X"
and one with only deviceId "X" are the same user, and must never be in two
requests at once. The bridge took them for two identities ('u' + userId,
'd' + deviceId), so with batch.max.users=1 it sent them in concurrent
requests: the sandbox (identity: userId, else deviceId, as the API's)
counted user_overlap 2 and answered 429 "concurrent request for user" in a
review's run.

20 events of three users, each user's alternating between userId and a
deviceId alone with the same value, in order (params.seq), on one
partition; the sandbox holds every request 300 ms so that an
overlap cannot slip by. Passes when the invariants hold (no overlap, each
user's events in order, every event delivered)."""
import json

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "300"])
lines, events = [], []
for i in range(60):
    who = f"person-{i % 3}"
    ev = {"appId": "app_alpha", "action": "track", "event": "Tap", "eid": f"id-{i}",
          "params": {"seq": i // 3}}
    ev["userId" if (i // 3) % 2 else "deviceId"] = who
    events.append(ev)
    lines.append(f"{who}\t{json.dumps(ev, separators=(',', ':'))}")
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        batch_max_users=1, batch_linger_ms=10,
                                        batch_max_wait_ms=50))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
st = sandbox.stats()
h.log(f"sandbox: user_overlap {st['user_overlap']}, by status {st['by_status']}")
counts = h.check_invariants(events, sandbox, h.read_topic(kafka.bootstrap, DLQ),
                            expect_dead=[])
h.log(f"{counts}")
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
