"""Dead letters waiting to be written again (the DLQ topic's broker is down)
are given up when their partitions are revoked: the next owner reads the
events again and writes its own. Before, they stayed in the dead-letter
producer's retry list: every rebalance added another copy of each (held
in the memory bound, for partitions this instance may no longer own), and
once the broker returned every copy was written: 918 records for 200
rejected events after three rebalances.

Two instances' worth of churn: a second instance joins (eager: both
partitions are revoked from the first and one comes back), then crashes
(kill -9: its own dead letters go with it) and the first takes both
partitions again; twice. Asserted: the first instance's pending actions
do not grow with the rebalances (the dead letters are given up at the
revocation, or when their write fails after it), and when the broker
returns the DLQ holds every rejected event's dead letter, not one per
rebalance; the offsets reach the end."""
import collections
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
N = 2000
PENDING, ASSIGNED = "leanbridge_pending_actions", "leanbridge_partitions_assigned"
RETRIES = "leanbridge_dlq_produce_retries_total"

wd = h.workdir()
kafka = h.mock_with_dlq_apart(TOPIC, 2, DLQ)
sandbox = h.Sandbox(h.APPS, wd, extra=["--fail-event", "Rejected"])
lines, events, rejected = h.rejected_events(N, users=200, seed=21)
h.produce(kafka.bootstrap, TOPIC, lines)

kafka.command("broker-down 3")
common = dict(kafka_producer_message_timeout_ms=2000, rebalance_timeout_ms=2000,
              api_timeout_ms=1000, api_timeout_hold_ms=0)
pa, pb = h.free_port(), h.free_port()
a = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                   metrics_listen=f"127.0.0.1:{pa}", **common), name="a")
h.wait_for(lambda: sandbox.accepted_count() >= N - len(rejected), 120, "good events delivered")
h.wait_for(lambda: (h.metric(pa, RETRIES) or 0) >= len(rejected), 90,
           "every dead letter timed out and waiting to be written again")
before = h.metric(pa, PENDING)
h.check(before >= len(rejected), f"{PENDING} = {before}, want >= {len(rejected)}")

for k in range(2):
    b = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                       metrics_listen=f"127.0.0.1:{pb}", **common),
                 name=f"b{k}")
    h.wait_for(lambda: h.metric(pb, ASSIGNED) == 1 and h.metric(pa, ASSIGNED) == 1, 60,
               f"round {k}: one partition each")
    time.sleep(3)
    b.stop(sig=9)
    h.wait_for(lambda: h.metric(pa, ASSIGNED) == 2, 60, f"round {k}: a owns both again")
    # a read both partitions again from the committed offsets: their
    # rejected events are dead-lettered (and time out) once more
    h.wait_for(lambda: (h.metric(pa, PENDING) or 0) >= len(rejected), 60,
               f"round {k}: the rejected events held again")
    # The revoked partitions' dead letters that the producer still held are
    # given up when their write times out (2 s), reported at its next poll:
    # under load that can take longer than a fixed sleep (a CI run saw 276
    # after 4 s). Copies that are never given up (the defect) stay.
    limit = before + len(rejected) // 10
    deadline = time.monotonic() + 30
    now = h.metric(pa, PENDING)
    while (now is None or now > limit) and time.monotonic() < deadline:
        time.sleep(0.5)
        now = h.metric(pa, PENDING)
    h.log(f"round {k}: a pending {now} (before the rebalances {before})")
    h.check(now is not None and now <= limit,
            f"round {k}: {PENDING} grew from {before} to {now} and stayed there for "
            "30 s: dead letters of revoked partitions still held")

time.sleep(3)  # the last given-up records' own timeouts (2 s) have passed
kafka.command("broker-up 3")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "offsets at the end after the DLQ broker returned")
h.check(a.stop() == 0, "a's exit code")
dlq = h.read_topic(kafka.bootstrap, DLQ)
per_eid = collections.Counter(h.json.loads(r["value"])["eid"] for r in dlq)
h.check(set(per_eid) == rejected, f"dead letters for {len(per_eid)} events, want the "
        f"{len(rejected)} rejected ones")
h.check(len(dlq) <= len(rejected) * 11 // 10,
        f"{len(dlq)} dead-letter records for {len(rejected)} rejected events "
        f"(most copies of one: {max(per_eid.values())})")
h.log(f"DLQ revoke: {len(dlq)} DLQ records for {len(rejected)} rejected events")
print("1 passed, 0 failed")
