"""Dead letters waiting for their topic count in the memory bound with what
they really hold: the dead-letter producer's copy of each record (the
message with its key and value, and its headers) and the reason. Before,
only the action itself counted (about 130 bytes for a small event), while
each queued record held about 1,100 bytes more in librdkafka (measured:
1,121 bytes of RSS a record for a 100-byte event with seven leanbridge.*
headers), so with the DLQ topic down the process held several times its
bound: 600,000 invalid events in a 256 MiB limit peaked at 278 MiB.

6,000 invalid events (their dead letters fit the mock cluster's few MB),
the DLQ broker down, pending.max.bytes at 1 MiB: once nothing moves (nothing
drains while the topic is down), the input must be paused and the actions
held times that measured 1,121 bytes must fit within 1.5x the bound; when the broker returns every dead letter is written and the
offsets reach the end."""
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 6000
LIMIT = 1024 * 1024
RECORD = 1121  # librdkafka 2.0.2's queued dead-letter record, measured

wd = h.workdir()
kafka = h.mock_with_dlq_apart(TOPIC, 1, DLQ)
sandbox = h.Sandbox(h.APPS, wd)
h.produce(kafka.bootstrap, TOPIC, [f"k{i}\tnot json {i}" for i in range(N)])

kafka.command("broker-down 3")
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        kafka_producer_message_timeout_ms=120000,
                                        batch_max_bytes=65536, pending_max_bytes=LIMIT,
                                        metrics_listen=f"127.0.0.1:{port}"))
PENDING = "leanbridge_pending_actions"


def stalled():
    seen = h.metric(port, PENDING)
    time.sleep(2)
    return seen and h.metric(port, PENDING) == seen


h.wait_for(stalled, 90, "the dead letters waiting, nothing moving")
held, live = h.metric(port, "leanbridge_held_bytes"), h.metric(port, PENDING)
h.log(f"stalled: {live:.0f} dead letters waiting, held {held:.0f} of {LIMIT}")
h.check(h.metric(port, "leanbridge_partitions_paused") == 1,
        f"not paused with {live:.0f} dead letters waiting, held {held:.0f} of {LIMIT}")
h.check(live * RECORD <= 1.5 * LIMIT,
        f"{live:.0f} dead letters waiting hold about {live * RECORD / 2**20:.1f} MiB "
        f"in the producer alone, against a bound of {LIMIT / 2**20:.0f} MiB")
h.check(held >= LIMIT // 2, f"leanbridge_held_bytes = {held}")

kafka.command("broker-up 3")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
           "offsets at the end after the DLQ broker returned")
h.check(bridge.stop() == 0, "bridge exit code")
dlq = h.read_topic(kafka.bootstrap, DLQ)
keys = {r["key"] for r in dlq}
h.check(keys == {f"k{i}" for i in range(N)}, f"{len(keys)} of {N} events dead-lettered")
h.log(f"DLQ bound: {len(dlq)} dead letters for {N} events")
print("1 passed, 0 failed")
