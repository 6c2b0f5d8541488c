"""The offset tracker's ring counts in the memory bound. One action at the
head of a partition that cannot finish (its dead letter waits for the DLQ
topic's broker, down) keeps every later offset in the partition's ring,
done or not, 8 bytes each: before, the ring was not counted (only 8 bytes
per live action), so behind a stuck head it grew without bound at the
input's rate (a 10M-offset ring is 128 MiB) while the bound saw one action.

A poison event first, then 20,000 good ones (the mock cluster keeps about
5 MB a partition), with pending.max.bytes at 128 KiB: the ring reaches it
at 16,384 slots (with the rest of what is held, sooner), so the input must
pause well before the end and stay paused while the head waits;
when the broker returns, the dead letter is written, the ring goes, and
everything is delivered and committed."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 20000
LIMIT = 128 * 1024

wd = h.workdir()
kafka = h.mock_with_dlq_apart(TOPIC, 1, DLQ)
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(N, users=500, seed=5)
h.produce(kafka.bootstrap, TOPIC, ["k-poison\tnot json"] + lines)

kafka.command("broker-down 3")
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        kafka_producer_message_timeout_ms=2000,
                                        batch_max_bytes=8192, pending_max_bytes=LIMIT,
                                        metrics_listen=f"127.0.0.1:{port}"))


def stalled():
    seen = sandbox.accepted_count()
    time.sleep(2)
    return (seen and sandbox.accepted_count() == seen and
            h.metric(port, "leanbridge_partitions_paused") == 1)


h.wait_for(stalled, 90, "the input paused at the bound, the ring counted")
time.sleep(5)
now = sandbox.accepted_count()
held = h.metric(port, "leanbridge_held_bytes")
h.log(f"paused: {now} delivered, held {held} of {LIMIT}")
h.check(now < N // 2, f"{now} of {N} events delivered behind the stuck head")
h.check(held is not None and held >= LIMIT // 2, f"leanbridge_held_bytes = {held}")
h.check(h.metric(port, "leanbridge_partitions_paused") == 1, "resumed with the head stuck")

kafka.command("broker-up 3")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "offsets at the end after the DLQ broker returned")
h.check(bridge.stop() == 0, "bridge exit code")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check(len(dlq) == 1 and dlq[0]["key"] == "k-poison", f"{len(dlq)} dead letters")
counts = h.check_invariants(events, sandbox, dlq)
h.log(f"ring bound: {counts}")
print("1 passed, 0 failed")
