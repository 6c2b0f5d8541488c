"""A 403 for a request over the API's limits: the sandbox enforces smaller
limits (10 actions, 4 users) than the bridge packs (500, 50); the bridge
splits refused requests in halves, recursively, in order, until they pass.
Everything is delivered once, in order."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--max-actions", "10", "--max-users", "4"])
lines, events = h.make_events(2000, users=60, seed=5)
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen="127.0.0.1:0"))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered: {dlq[:2]}")
counts = h.check_invariants(events, sandbox, dlq, allow_dup=False, limit_403_ok=True)
st = sandbox.stats()
h.check(st.get("limit_violations", 0) > 0, f"the sandbox never refused a request: {st}")
h.check(counts["delivered"] == 2000, f"{counts}")
h.log(f"split on 403: {counts}; refused requests={st.get('limit_violations')}, requests={st.get('requests')}")
print("1 passed, 0 failed")
