"""Issue 24, defect 2: one refused commit no longer turns offset maps off.
A broker refuses a commit's maps as too large (OFFSET_METADATA_TOO_LARGE,
injected into the mock cluster's next OffsetCommit: every partition in it
refused at once). The bridge used to halve its room for maps once per
refused partition in that commit (eight partitions: 4096 bytes to 0, never
raised again: every later crash and handover silently redid a whole budget).
Now the commit counts once: the room becomes half the smallest refused map
(one warning, the gauge leanbridge_offset_map_room_bytes says it), it is
probed back up later (unit-tested in test_offset_map), and everything is
still delivered and committed."""
import time

import harness as h

TOPIC, DLQ, PARTS = "events", "events.dlq", 8
WARNING = "the broker refused an offset map"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: PARTS, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ, metrics_listen=f"127.0.0.1:{port}",
    batch_max_wait_ms=20000))
h.wait_for(lambda: h.metric(port, "leanbridge_partitions_assigned") == PARTS, 60,
           "the assignment")

# Held events between tombstones (done at once): every partition's commit
# carries a map of a few hundred bytes (runs of done and not done).
N = 800
lines, events = h.make_events(N, users=300, seed=5, tombstones=N)
lines = [x for pair in zip(lines[:N], lines[N:]) for x in pair]
events = [x for pair in zip(events[:N], events[N:]) for x in pair]
h.produce(kafka.bootstrap, TOPIC, lines)
h.wait_for(lambda: h.metric(port, "leanbridge_events_consumed_total") == 2 * N, 30,
           f"{2 * N} events consumed")
time.sleep(2.5)  # commits with maps
kafka.command("commit-errors 1 12")  # OFFSET_METADATA_TOO_LARGE
more = [f"late-{i}\t\\N" for i in range(200)]  # every partition's map changes
h.produce(kafka.bootstrap, TOPIC, more)
h.wait_for(lambda: WARNING in bridge.log_text(), 20, "the refusal's warning")
time.sleep(2.5)  # later commits
room = h.metric(port, "leanbridge_offset_map_room_bytes")
warnings = bridge.log_text().count(WARNING)
h.log(f"after the refused commit: {warnings} warning(s), room {room} bytes")
h.check(warnings == 1, f"{warnings} warnings for one refused commit")
h.check(room is not None and 64 <= room <= 2048,
        f"room for maps {room} after one refused commit")

h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 90,
           "committed offsets at the end of every partition")
h.check(h.metric(port, "leanbridge_offset_map_room_bytes") == room,
        "the room changed before its probe was due")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
counts = h.check_invariants(events + [None] * len(more), sandbox, dlq)
h.log(f"{counts}")
print("1 passed, 0 failed")
