"""Counter values after a real run, against what the sandbox and the DLQ saw:
requests by status, retries (one per 500: attempts are unlimited), splits
(one per 403 over the limits), DLQ produce retries (the broker refuses the
first dead-letter record as too large: it is written cut), and offsets
stored for commit (the counter's help says stores, which is what it counts)."""
import re
import urllib.request

import harness as h

TOPIC, DLQ = "events", "events.dlq"


def value(text, series):
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--max-actions", "20", "--max-users", "5",
                                       "--p500", "0.2", "--seed", "9"])
lines, events = h.make_events(1000, users=80, seed=47)
lines.append("poison\tnot json")
h.produce(kafka.bootstrap, TOPIC, lines)
kafka.command("produce-errors 1 10")  # MSG_SIZE_TOO_LARGE for the DLQ record
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, retry_max_attempts=-1,
    retry_backoff_initial_ms=10, retry_backoff_max_ms=50,
    metrics_listen=f"127.0.0.1:{port}"))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
    text = r.read().decode()
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
st = sandbox.stats()
for status, n in st["by_status"].items():
    got = value(text, f'leanbridge_requests_total{{status="{status}"}}')
    h.check(got == n, f"requests with status {status}: metric {got}, sandbox {n}")
h.check(st["by_status"].get("500", 0) > 0 and st["limit_violations"] > 0, f"no faults: {st}")
h.check(value(text, "leanbridge_request_retries_total") == st["by_status"]["500"],
        "retries differ from the sandbox's 500s")
h.check(value(text, "leanbridge_request_splits_total") == st["limit_violations"],
        "splits differ from the sandbox's 403s")
h.check(value(text, "leanbridge_dlq_produce_retries_total") == 1,
        f"DLQ produce retries {value(text, 'leanbridge_dlq_produce_retries_total')}")
stored = value(text, "leanbridge_offsets_committed_total")
h.check(stored >= 2, f"offsets committed: {stored}")  # at least one per partition
h.check(re.search(r"^# HELP leanbridge_offsets_committed_total .*committed", text, re.M),
        "the offsets counter's help does not say it counts commits")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(len(dlq) == 1 and dlq[0]["key"] == "poison", f"DLQ {dlq}")
counts = h.check_invariants(events, sandbox, [], limit_403_ok=True)
h.log(f"metric values: {counts}; commits {stored}; sandbox {st['by_status']}")
print("1 passed, 0 failed")
