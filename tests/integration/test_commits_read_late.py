"""The group's commits read on assignment outlast rebalance.timeout.ms
because the coordinator lookup answers late (every FindCoordinator answer
of the mock cluster comes 1.5 s late): the partitions go on without their
maps at the read's deadline, the metric and the log say so, the late
lookup harms nothing, and every event is delivered. librdkafka 2.0.2
frees an admin request that times out during its coordinator lookup and
uses it when the lookup answers; the bridge used to abort or hang here."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"
FIND_COORDINATOR = 10

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
kafka.command(f"late {FIND_COORDINATOR} 20 1500")
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(300, users=30, seed=71)
h.produce(kafka.bootstrap, TOPIC, lines)
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, rebalance_timeout_ms=300,
    metrics_listen=f"127.0.0.1:{port}"))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
failed = h.metric(port, "leanbridge_offset_map_reads_failed_total")
rc = bridge.stop()
log = bridge.log_text()
h.check(rc == 0, f"bridge exit code {rc}\n{log[-3000:]}")
h.check(failed is not None and failed >= 1,
        f"leanbridge_offset_map_reads_failed_total is {failed}")
h.check("no answer within 300 ms" in log, "the given-up read is not in the log")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dlq, f"{len(dlq)} dead letters, e.g. {dlq[:1]}")
counts = h.check_invariants(events, sandbox, dlq)
h.check(counts["delivered"] == 300, f"{counts}")
h.log(f"commits read late: {counts}, reads given up: {failed:.0f}")
print("1 passed, 0 failed")
