"""SIGTERM while work is pending: requests split by 403s are half done,
others wait for a retry (500s, long backoff), and shutdown.timeout.ms=0
gives up at once. The bridge must exit 0 (ASan clean: no action freed twice,
whichever part of a split it was in), commit nothing past unfinished work,
and a second run must deliver or dead-letter everything."""
import signal
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=[
    "--max-actions", "10", "--max-users", "4", "--p500", "0.5", "--seed", "3"])
lines, events = h.make_events(2000, users=60, seed=8)
h.produce(kafka.bootstrap, TOPIC, lines)
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             retry_backoff_initial_ms=3000,
                             retry_backoff_max_ms=3000,
                             retry_max_attempts=-1, shutdown_timeout_ms=0)
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: sandbox.stats().get("limit_violations", 0) > 0
           and sandbox.stats()["by_status"].get("200", 0) > 0, 60,
           "split requests, some delivered")
time.sleep(3)
rc = bridge.stop(signal.SIGTERM)
h.check(rc == 0, f"bridge exit code {rc} after SIGTERM with work pending")
h.check("not finished" in bridge.log_text(),
        "the bridge had no work pending at SIGTERM: the test proves nothing")

settings["shutdown.timeout.ms"] = "10000"
settings["retry.backoff.initial.ms"] = "50"
settings["retry.backoff.max.ms"] = "200"
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 240,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"second run exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
counts = h.check_invariants(events, sandbox, dlq, limit_403_ok=True)
h.log(f"shutdown with work pending: {counts}")
print("1 passed, 0 failed")
