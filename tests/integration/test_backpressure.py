"""The API is down for a while with a large backlog waiting: the bridge
pauses its partitions at pending.max.actions, memory stays flat (no growth
with the backlog), and when the API returns it catches up and delivers
everything, in order, with offsets at the end."""
import time

import os

import harness as h

# Under AddressSanitizer freed memory sits in a quarantine that looks like
# growth; keep it small so RSS measures the bridge, not the sanitizer.
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                              ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64").lstrip(":")

TOPIC, DLQ = "events", "events.dlq"
N = 120000
PENDING_MAX = 5000


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 8, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
sandbox.set_down(True)
lines, events = h.make_events(N, users=5000, seed=9)
h.produce(kafka.bootstrap, TOPIC, lines)

port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, pending_max_actions=PENDING_MAX,
    retry_max_attempts=-1, metrics_listen=f"127.0.0.1:{port}"))
h.wait_for(lambda: "pausing input" in bridge.log_text(), 60, "the bridge to pause its input")
samples = []
for i in range(15):
    time.sleep(1)
    samples.append(rss_kb(bridge.proc.pid))
paused = h.metric(port, "leanbridge_partitions_paused")
pending = h.metric(port, "leanbridge_pending_actions")
consumed = h.metric(port, "leanbridge_events_consumed_total")
h.log(f"API down: RSS samples (KB) {samples}; paused={paused} pending={pending} consumed={consumed}")
h.check(paused and paused > 0, "partitions should be paused while the API is down")
h.check(consumed < N / 2, f"consumed {consumed} of {N} while the API was down: not bounded")
h.check(pending is not None and pending <= PENDING_MAX, f"pending {pending} over {PENDING_MAX}")
growth = samples[-1] - samples[0]
h.check(growth < 8 * 1024, f"RSS grew {growth} KB during the outage")

sandbox.set_down(False)
t0 = time.time()
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 300,
           "catch-up after the outage")
h.log(f"caught up {N} events in {time.time() - t0:.1f}s after the API returned")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"nothing should be dead-lettered: {len(dlq)}")
counts = h.check_invariants(events, sandbox, dlq)
h.check(counts["delivered"] == N, f"{counts}")
h.log(f"backpressure: {counts}, peak RSS during outage {max(samples)} KB")
print("1 passed, 0 failed")
