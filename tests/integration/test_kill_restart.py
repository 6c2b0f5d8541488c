"""SIGKILL in the middle of load, restart, several times: nothing is lost
(delivered + dead-lettered = produced), per-user order holds for first
deliveries, offsets reach the end. Duplicates are allowed and reported."""
import signal

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 30000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "15", "--fail-event", "Rejected"])
lines, events = h.make_events(N, users=2000, seed=3)
# A few API-refused events so dead-lettering is under way at kill time too.
for i in range(0, N, 500):
    events[i]["event"] = "Rejected"
    events[i]["action"] = "track"
lines = [f"{e['userId']}\t" + h.json.dumps(e, separators=(",", ":")) for e in events]
h.produce(kafka.bootstrap, TOPIC, lines)

settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, sender_max_inflight=8,
                             pending_max_actions=2000)
bridge = h.Bridge(wd, settings)
kills = 0
for i in range(4):
    target = sandbox.accepted_count() + N // 10
    h.wait_for(lambda: sandbox.accepted_count() > target, 120, "progress before kill")
    committed = sum(off for _, off, _ in h.committed(kafka.bootstrap, "lbtest", TOPIC) if off > 0)
    bridge.stop(signal.SIGKILL)
    kills += 1
    h.log(f"kill {kills}: {sandbox.accepted_count()} actions accepted, {committed} offsets committed")
    bridge.start()
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 300,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
for r in dlq:
    h.check(r["headers"].get("leanbridge.error.stage") == "api", f"unexpected dead letter {r['headers']}")
counts = h.check_invariants(events, sandbox, dlq)
h.check(counts["dead_lettered"] == N // 500, f"dead-lettered {counts['dead_lettered']}, want {N // 500}")
h.check(counts["delivered"] == N - N // 500, f"{counts}")
h.log(f"kill/restart x{kills}: {counts}, DLQ records={len(dlq)} "
      f"(duplicate DLQ records={len(dlq) - counts['dead_lettered']})")
print("1 passed, 0 failed")
