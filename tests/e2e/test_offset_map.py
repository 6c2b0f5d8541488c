"""The offset map on a real Apache Kafka broker: a crash redoes nothing that
was delivered, and a broker that allows less metadata degrades to
duplicates, never to loss.

1. One partition. A user's single action is held by a long wait budget (its
   offset, the first, keeps the committed offset at 0) while 30 users' full
   requests are delivered behind it. The bridge is SIGKILLed once those
   are committed in its offset map; a new bridge in the same group sends
   the held action once and skips the 300 delivered ones (0 duplicates;
   without the map all 300 would be sent again).
2. The same on a broker with offset.metadata.max.bytes=64 and the done
   offsets in 30 runs: the broker refuses the whole map, the bridge halves
   the room for it until its nearest part fits, and after the crash nothing
   is lost; what did not fit is redone.
The control: without a map (commit.metadata.max.bytes=0), scenario 1 sends
the 300 delivered actions again.
Skips (77) without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

FULL_USERS, PER_USER = 30, 10


def line(ev):
    return f"{ev['userId']}\t" + json.dumps(ev, separators=(",", ":"))


def traffic(interleave):
    """Held single actions and full users' actions, in the order produced."""
    events = []
    seq = 0

    def ev(uid, s):
        nonlocal seq
        seq += 1
        return {"appId": "app_alpha", "userId": uid, "action": "track", "event": "E",
                "eid": f"e{seq}", "params": {"seq": s}}
    for k in range(FULL_USERS):
        if interleave or k == 0:
            events.append(ev(f"held-{k}", 0))
        events += [ev(f"full-{k}", s) for s in range(PER_USER)]
    return events


def crash_and_redo(broker, wd, name, interleave, **extra):
    topic, dlq, group = f"{name}.events", f"{name}.dlq", name
    broker.create_topic(topic, 1)
    broker.create_topic(dlq, 1)
    sandbox = h.Sandbox(h.APPS, wd, name=f"{name}-sandbox")
    events = traffic(interleave)
    h.produce(broker.bootstrap, topic, [line(e) for e in events])
    port = h.free_port()
    s = h.bridge_settings(broker.bootstrap, sandbox, topic, dlq, group=group,
                          batch_max_wait_ms=120000, batch_max_actions=PER_USER,
                          metrics_listen=f"127.0.0.1:{port}", **extra)
    a = h.Bridge(wd, s, name=f"{name}-a")
    full = FULL_USERS * PER_USER
    h.wait_for(lambda: sandbox.accepted_count() == full, 60, "the full users delivered")
    h.wait_for(lambda: (h.metric(port, "leanbridge_offsets_committed_total") or 0) > 0, 30,
               "a commit")
    # Every full user's offsets are done; a few commit intervals (and, on
    # the small broker, the halvings of the map's room) pass.
    time.sleep(8)
    rows = h.committed(broker.bootstrap, group, topic)
    h.check(rows and rows[0][1] == 0, f"the held action keeps the committed offset at 0: {rows}")
    truncated = h.metric(port, "leanbridge_offset_maps_truncated_total")
    a.stop(sig=signal.SIGKILL)
    h.check(sandbox.accepted_count() == full, "nothing held was sent before the crash")

    port_b = h.free_port()
    b = h.Bridge(wd, dict(s, **{"batch.max.wait.ms": "1000",
                                "metrics.listen": f"127.0.0.1:{port_b}"}), name=f"{name}-b")
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, topic), 120, "b commits everything")
    skipped = h.metric(port_b, "leanbridge_events_already_done_total")
    h.check(b.stop() == 0, "b exits 0")
    counts = h.check_invariants(events, sandbox, h.read_topic(broker.bootstrap, dlq))
    h.log(f"{name}: {counts}; skipped by the map {skipped:.0f}; "
          f"commits with a truncated map {truncated:.0f}")
    return counts, skipped, a.log_text()


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        h.log(f"Kafka {broker.version} at {broker.bootstrap}")
        counts, skipped, _ = crash_and_redo(broker, wd, "map", interleave=False)
        h.check(counts["duplicates"] == 0, f"a crash redid delivered work: {counts}")
        h.check(skipped == FULL_USERS * PER_USER, f"skipped {skipped}")
        # The control: without a map (commit.metadata.max.bytes=0) the same
        # crash sends all 300 again.
        counts, skipped, _ = crash_and_redo(broker, wd, "nomap", interleave=False,
                                            commit_metadata_max_bytes=0)
        h.check(counts["duplicates"] == FULL_USERS * PER_USER and skipped == 0,
                f"without a map: {counts}, skipped {skipped}")
    with kb.Broker(extra_props={"offset.metadata.max.bytes": "64"}) as broker:
        counts, skipped, log = crash_and_redo(broker, wd, "small", interleave=True)
        h.check("refused an offset map" in log, "the refused map is logged")
        h.check(counts["dead_lettered"] == 0, f"{counts}")
        h.check(0 < skipped < FULL_USERS * PER_USER,
                f"a truncated map skips its nearest part only: {skipped}")
        h.check(counts["duplicates"] == FULL_USERS * PER_USER - skipped,
                f"what the map left out is redone, nothing else: {counts}, skipped {skipped}")
    print("1 passed, 0 failed")


main()
