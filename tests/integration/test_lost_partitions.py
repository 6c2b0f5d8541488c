"""Partitions lost (the group coordinator unreachable past the session
timeout) while their actions are in flights waiting to retry: the flights
give those actions up at once. They are never retried or dead-lettered by
this instance any more (the next owner, here the same instance after it
rejoins, redoes them), so the API being down meanwhile dead-letters
nothing of the old generation: the DLQ stays empty, nothing is lost.
/readyz says "not joined" (503) from the loss until the bridge rejoins, and
outage mode (the API answers 503) ends once nothing is left to probe with."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1}, brokers=2)
for part in (0, 1):
    kafka.command(f"leader {TOPIC} {part} 2")
kafka.command(f"leader {DLQ} 0 2")
kafka.command("coordinator lbtest 1")
sandbox = h.Sandbox(h.APPS, wd)
sandbox.set_down(True)
lines, events = h.make_events(100, users=10, seed=53)
h.produce(kafka.bootstrap, TOPIC, lines)
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, retry_max_attempts=4,
    retry_backoff_initial_ms=5000, retry_backoff_max_ms=5000,
    metrics_listen=f"127.0.0.1:{port}"))
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "ready: joined")
h.wait_for(lambda: sandbox.stats()["requests"] > 0, 60, "first attempts")
h.wait_for(lambda: h.metric(port, "leanbridge_api_outage") == 1, 60, "outage mode")
kafka.command("broker-down 1")
h.wait_for(lambda: "lost" in bridge.log_text(), 60, "the partitions to be lost")
# Out of the group until the coordinator answers again: not ready.
status, body = h.http_get(port, "/readyz")
h.check(status == 503 and "not joined" in body,
        f"/readyz after the partitions were lost: {status} {body.strip()}")
# Nothing is left to probe the API with: outage mode (and its critical
# alert) does not stay on for want of a probe.
h.wait_for(lambda: h.metric(port, "leanbridge_api_outage") == 0, 10,
           "outage mode left once nothing is left to probe with")
time.sleep(20)  # past the flights' last attempt (4 x 5 s)
kafka.command("broker-up 1")
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 120, "ready again: rejoined")
sandbox.set_down(False)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"{len(dlq)} dead letters for lost partitions' actions, e.g. "
        f"{dlq[0]['headers'] if dlq else None}")
counts = h.check_invariants(events, sandbox, dlq)
h.log(f"lost partitions: {counts}")
print("1 passed, 0 failed")
