"""Issue 16, repro 1 (SIGTERM): a request whose last allowed attempt timed
out has its actions dead-lettered at once, yet may still run at the API for
api.timeout.hold.ms. The shutdown must wait for it in the ledger, whatever
happened to its actions: here everything is committed (dead-lettered) when
SIGTERM comes, and a second instance then sends new events for the same
users. Before the ledger, the first bridge left at once ("draining 0
action(s)", 0.03 s) with the sandbox still processing its requests, and the
second bridge's requests met them (429 concurrent request for user,
user_overlap > 0). Now the first bridge leaves only once its requests'
holds are over, within shutdown.timeout.ms + api.timeout.ms +
api.timeout.hold.ms, and no request overlaps another for one user."""
import signal
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
DELAY_MS, HOLD_MS = 12000, 14000

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", str(DELAY_MS)])
seq = {}
lines, events = h.make_events(30, users=6, seed=31, start_seq=seq)
h.produce(kafka.bootstrap, TOPIC, lines)
first = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=500,
    api_timeout_hold_ms=HOLD_MS, retry_max_attempts=1, batch_max_wait_ms=100,
    shutdown_timeout_ms=1000), name="first")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60,
           "the first bridge's offsets committed (dead-lettered on timeout)")
h.check(sandbox.stats().get("inflight", 0) > 0,
        "no request still running at the API: the test proves nothing")
t0 = time.monotonic()
rc = first.stop(signal.SIGTERM, timeout=60)
took = time.monotonic() - t0
h.check(rc == 0, f"first bridge exit code {rc}\n{first.log_text()[-2000:]}")
h.log(f"first bridge exited {took:.2f} s after SIGTERM "
      f"(sandbox inflight now {sandbox.stats().get('inflight')})")
h.check(took <= (1000 + 500 + HOLD_MS) / 1000 + 3,
        f"exit took {took:.1f} s, over the exit bound")

more, more_events = h.make_events(30, users=6, seed=32, start_seq=seq)
h.produce(kafka.bootstrap, TOPIC, more)
second = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=20000,
    batch_max_wait_ms=100), name="second")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "the second bridge's offsets committed")
rc = second.stop()
h.check(rc == 0, f"second bridge exit code {rc}")
st = sandbox.stats()
h.check(st["user_overlap"] == 0,
        f"{st['user_overlap']} request(s) for a user the API was still "
        f"processing: the first bridge left while its timed-out requests ran")
counts = h.check_invariants(events + more_events, sandbox,
                            h.read_topic(kafka.bootstrap, DLQ))
h.log(f"SIGTERM with held requests: {counts}; exit {took:.2f} s")
print("1 passed, 0 failed")
