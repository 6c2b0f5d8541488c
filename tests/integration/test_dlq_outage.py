"""The dead-letter topic's broker goes down while events are being
dead-lettered: records time out, the bridge keeps retrying them and does not
commit past them, nor count them as dead-lettered; when the broker returns
every dead letter lands, counted once, and the offsets reach the end.
Nothing is dropped."""

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 3000

wd = h.workdir()
kafka = h.mock_with_dlq_apart(TOPIC, 2, DLQ)
sandbox = h.Sandbox(h.APPS, wd, extra=["--fail-event", "Rejected"])
lines, events, rejected = h.rejected_events(N, users=200, seed=21)
h.produce(kafka.bootstrap, TOPIC, lines)

kafka.command("broker-down 3")
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        kafka_producer_message_timeout_ms=2000,
                                        metrics_listen=f"127.0.0.1:{port}"))
DEAD = 'leanbridge_actions_dead_lettered_total{stage="api"}'
h.wait_for(lambda: sandbox.accepted_count() >= N - len(rejected), 120, "good events delivered")
# Dead-letter records time out (message.timeout.ms=2000) and are produced
# again; how soon the first timeout is reported depends on the producer's
# state machine (an idempotent producer with its leader down), so wait for
# it rather than sleep a fixed time.
RETRIES = "leanbridge_dlq_produce_retries_total"
h.wait_for(lambda: (h.metric(port, RETRIES) or 0) >= 2 * len(rejected), 60,
           "dead-letter records timing out and retried, twice each")
rows = h.committed(kafka.bootstrap, "lbtest", TOPIC)
h.check(all(off < high for _, off, high in rows),
        f"offsets were committed past unacknowledged dead letters: {rows}")
h.check("retrying" in bridge.log_text(), "the bridge should report dead-letter retries")
# ... without a line per record and try: one now and then, with a count.
warned = bridge.log_text().count("dead-letter record for")
h.check(1 <= warned <= 3, f"{warned} warnings for {h.metric(port, RETRIES)} retries")
# Nothing is written yet: the metric says what the topic acknowledged.
h.check(not h.metric(port, DEAD), f"{DEAD} = {h.metric(port, DEAD)} with the DLQ broker down")
# ... and the actions waiting for it are pending: consumed, not yet done.
pending = h.metric(port, "leanbridge_pending_actions")
h.check(pending >= len(rejected), f"leanbridge_pending_actions = {pending} with "
        f"{len(rejected)} dead letters waiting for the DLQ")
h.log(f"DLQ broker down: committed {rows} (held back as expected)")
kafka.command("broker-up 3")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "offsets at the end after the DLQ broker returned")
h.check(h.metric(port, DEAD) == len(rejected),
        f"{DEAD} = {h.metric(port, DEAD)}, want {len(rejected)}")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
counts = h.check_invariants(events, sandbox, dlq, expect_dead=rejected)
h.log(f"DLQ outage: {counts}, DLQ records={len(dlq)}")
print("1 passed, 0 failed")
