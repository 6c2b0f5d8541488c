"""Issue 24, item 5: loss that Kafka caused is reported. On a real Apache
Kafka broker a group has committed offset 10 of a 100-event partition when
the records before offset 40 are deleted (DeleteRecords: what retention
does to a group that fell behind). The bridge that then takes the partition
cannot bring events 10..39 back, but it says so: an error naming the
partition, the count and the offsets, and
leanbridge_events_lost_to_retention_total counts 30 (the alert
LeanbridgeEventsLostToRetention fires on it); events 40..99 are delivered.
A group whose committed offset is past the deleted part (offset 60) reports
nothing. And retention can overtake a bridge that holds the partition: it
has taken the first events of another topic and paused (pending.max.actions,
a slow API) when the records before offset 60 are deleted; librdkafka then
resets its fetch to the new log start, and the bridge counts the offsets
it jumped over that the log no longer has (60 less those it took), names
them in an error, and delivers everything else. The same when every record
of the partition is deleted: the partition's end, not a message, is then
what comes after the jump (and the commit still reaches it). Skips (77)
without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ, N = "ret.events", "ret.dlq", 100


def lose(broker, group, commit, before, topic=TOPIC):
    p = subprocess.run([h.KAFKATOOL, "lose", "-b", broker.bootstrap, "-t", topic, "-g", group,
                        "-p", "0", "-c", str(commit), "-o", str(before)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    h.check(p.returncode == 0, f"lb-kafkatool lose: {p.stderr.decode()[-1000:]}")


def run(broker, wd, group, events):
    sandbox = h.Sandbox(h.APPS, wd, name=f"sandbox-{group}")
    port = h.free_port()
    bridge = h.Bridge(wd, h.bridge_settings(broker.bootstrap, sandbox, TOPIC, DLQ, group=group,
                                            metrics_listen=f"127.0.0.1:{port}"),
                      name=f"bridge-{group}")
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, TOPIC), 120,
               f"{group}: committed to the end")
    lost = h.metric(port, "leanbridge_events_lost_to_retention_total")
    log = bridge.log_text()
    h.check(bridge.stop() == 0, f"{group}: bridge exit code")
    got = {a["action"]["eid"] for a in sandbox.actions()}
    sandbox.stop()
    return lost, log, got


def fell_behind(broker, wd, topic, cut):
    """Records deleted past the fetch position of the partition's owner:
    those before offset `cut` of 100; with cut 100, all of them, so the
    partition's end is what comes next, not a message."""
    n = 100
    group = f"fell-behind-{cut}"
    broker.create_topic(topic, 1)
    lines, events = h.make_events(n, users=20, seed=10)
    h.produce(broker.bootstrap, topic, lines)
    sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "4000"], name=f"sandbox-{group}")
    port = h.free_port()
    bridge = h.Bridge(wd, h.bridge_settings(
        broker.bootstrap, sandbox, topic, DLQ, group=group,
        metrics_listen=f"127.0.0.1:{port}", batch_max_actions=10, pending_max_actions=10,
        api_timeout_ms=30000), name=f"bridge-{group}")
    h.wait_for(lambda: h.metric(port, "leanbridge_partitions_paused") == 1, 60,
               "the bridge paused at pending.max.actions")
    lose(broker, "ret.bystander", 0, cut, topic=topic)
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, topic), 180,
               f"{group}: committed to the end")
    lost = int(h.metric(port, "leanbridge_events_lost_to_retention_total"))
    log = bridge.log_text()
    h.check(bridge.stop() == 0, f"{group}: bridge exit code")
    got = {a["action"]["eid"] for a in sandbox.actions()}
    sandbox.stop()
    taken = cut - lost
    h.log(f"{group}: took {taken}, lost {lost}; " + next(
        (ln for ln in log.splitlines() if "lost to retention" in ln), "no error line"))
    h.check(0 < taken < cut, f"lost {lost}: the bridge took {taken} before the deletion")
    h.check(got == {e["eid"] for e in events[:taken] + events[cut:]},
            f"delivered {len(got)} events, want offsets 0..{taken - 1} and {cut}..{n - 1}")
    h.check(f"{topic}[0]: {lost} event(s) lost to retention: offsets {taken}..{cut - 1} "
            "were deleted before the bridge consumed them" in log,
            "no error line naming the partition, the count and the offsets")


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 1)
        broker.create_topic(DLQ, 1)
        lines, events = h.make_events(N, users=20, seed=9)
        h.produce(broker.bootstrap, TOPIC, lines)
        lose(broker, "behind", 10, 40)
        lost, log, got = run(broker, wd, "behind", events)
        h.log(f"behind: lost {lost}; " + next(
            (ln for ln in log.splitlines() if "lost to retention" in ln), "no error line"))
        h.check(lost == 30, f"leanbridge_events_lost_to_retention_total = {lost}, want 30")
        h.check("ret.events[0]: 30 event(s) lost to retention" in log,
                "no error line naming the partition and the count")
        want = {e["eid"] for e in events[40:]}
        h.check(got == want, f"delivered {len(got)} events, want the {len(want)} of "
                "offsets 40..99")
        lose(broker, "ahead", 60, 40)
        lost, log, got = run(broker, wd, "ahead", events)
        h.check(lost == 0 and "lost to retention" not in log,
                f"a group past the deleted records reported {lost} lost")
        h.check(got == {e["eid"] for e in events[60:]}, "ahead: offsets 60..99 delivered")
        fell_behind(broker, wd, "ret.behind", 60)
        fell_behind(broker, wd, "ret.emptied", 100)
    print("1 passed, 0 failed")


main()
