"""Requests refused whole are split in halves, recursively, in order, until
they pass; everything is delivered once, in order. Two refusals: a 403 for
a request over the API's limits (the sandbox enforces smaller limits, 10
actions and 4 users, than the bridge packs, 500 and 50), and a 413 for a
body over a cap in front of the API (the sandbox's --max-body, 20,000
bytes, under the bridge's batch.max.bytes of 1 MiB: a proxy's, say)."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"


def run(extra, refused, what):
    wd = h.workdir()
    kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
    sandbox = h.Sandbox(h.APPS, wd, extra=extra)
    lines, events = h.make_events(2000, users=60, seed=5)
    h.produce(kafka.bootstrap, TOPIC, lines)
    bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                            metrics_listen="127.0.0.1:0"))
    h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
               f"{what}: committed offsets at the end of every partition")
    rc = bridge.stop()
    h.check(rc == 0, f"{what}: bridge exit code {rc}")
    dlq = h.read_topic(kafka.bootstrap, DLQ)
    h.check(not dlq, f"{what}: nothing should be dead-lettered: {dlq[:2]}")
    counts = h.check_invariants(events, sandbox, dlq, allow_dup=False, limit_403_ok=True)
    h.check(counts["delivered"] == 2000, f"{what}: {counts}")
    st = sandbox.stats()
    n = refused(st, sandbox)
    h.check(n > 0, f"{what}: the sandbox never refused a request: {st}")
    h.log(f"split on {what}: {counts}; refused requests={n}, requests={st.get('requests')}")
    kafka.stop()


run(["--max-actions", "10", "--max-users", "4"],
    lambda st, sb: st.get("limit_violations", 0), "403")
run(["--max-body", "20000"],
    lambda st, sb: sum(1 for r in sb.requests() if r.get("status") == 413), "413")
print("1 passed, 0 failed")
