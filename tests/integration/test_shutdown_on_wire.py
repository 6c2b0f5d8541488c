"""SIGTERM while requests are at a slow API, with a drain shorter than the
API takes: what is on the wire is not given up. Before, the drain's end
gave up every action, those on the wire too; the bridge then waited for
those same requests anyway (their users are busy at the API, and the next
owner must not overlap them) and threw their answers away: nothing was
committed, and the next owner sent every event again (billed twice,
campaigns fired twice).

The sandbox answers after 4 s; shutdown.timeout.ms=1000; SIGTERM once the
requests are at the API. Passes when the bridge exits 0 with every offset
committed (the answers that came during its wait for the API count), and a
second instance then finds nothing to redo: the sandbox accepted each
event once.

Then the same with a rebalance during that wait: a second member joins
just after the SIGTERM, the revocation gives up the first one's actions
on the wire, and their answer is a 504 (retry). The first must still exit
0: before, the emptied range was sent again (a NULL action encoded: the
process died with SIGSEGV, no final commit, leaving while requests ran)."""
import signal
import time

import harness as h

TOPIC, TOPIC2, DLQ = "events", "events2", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, TOPIC2: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "4000"])
lines, events = h.make_events(40, users=8, seed=5)
h.produce(kafka.bootstrap, TOPIC, lines)
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=8000,
                             api_timeout_hold_ms=2000, shutdown_timeout_ms=1000,
                             metrics_listen=f"127.0.0.1:{port}")
first = h.Bridge(wd, settings, name="first")
h.wait_for(lambda: (h.metric(port, "leanbridge_inflight_requests") or 0) > 0, 60,
           "requests at the API")
time.sleep(0.5)
t = time.monotonic()
rc = first.stop()
took = time.monotonic() - t
log = first.log_text()
rows = h.committed(kafka.bootstrap, "lbtest", TOPIC)
h.log(f"first instance: exit {rc} {took:.1f} s after SIGTERM; committed {rows}; the "
      f"sandbox accepted {sandbox.accepted_count()}")
h.check(rc == 0, f"first instance exit code {rc}")
h.check("within shutdown.timeout.ms" in log, "the drain did not run out of time: nothing was "
        "tested")
h.check(h.all_committed(kafka.bootstrap, "lbtest", TOPIC),
        f"answers that came during the wait for the API were not committed: {rows}")

second = h.Bridge(wd, settings, name="second")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "all committed")
time.sleep(2)
rc = second.stop()
h.check(rc == 0, f"second instance exit code {rc}")
counts = h.check_invariants(events, sandbox, h.read_topic(kafka.bootstrap, DLQ),
                            expect_dead=[])
h.check(counts["duplicates"] == 0 and sandbox.accepted_count() == len(events),
        f"events sent twice across the shutdown: {counts}, accepted "
        f"{sandbox.accepted_count()} of {len(events)}")
h.log(f"{counts}")
sandbox.stop()

# A rebalance while waiting for the API, then a retryable answer.
slow = h.Sandbox(h.APPS, wd, name="slow", extra=["--slow", "1", "--slow-ms", "4000"])
lines, _ = h.make_events(40, users=8, seed=6)
h.produce(kafka.bootstrap, TOPIC2, lines)
settings = h.bridge_settings(kafka.bootstrap, slow, TOPIC2, DLQ, group="lbtest2",
                             api_timeout_ms=8000, api_timeout_hold_ms=2000,
                             shutdown_timeout_ms=1000, metrics_listen=f"127.0.0.1:{port}")
first = h.Bridge(wd, settings, name="first2")
h.wait_for(lambda: (h.metric(port, "leanbridge_inflight_requests") or 0) > 0, 60,
           "requests at the API")
first.proc.send_signal(signal.SIGTERM)
time.sleep(0.2)
joiner = h.Bridge(wd, dict(settings, **{"metrics.listen": ""}), name="joiner")
rc = first.stop(timeout=60)
log = first.log_text()
h.check("revoking" in log and "shutting down: 0 action(s) given up" in log,
        "no revocation during the wait, or no retryable answer after it: nothing was tested")
h.check(rc == 0, f"first member exit code {rc} after a revocation during its wait for the API")
joiner.stop()
slow.stop()
kafka.stop()
print("1 passed, 0 failed")
