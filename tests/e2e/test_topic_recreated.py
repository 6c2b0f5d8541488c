"""The input topic deleted and created again while the bridge runs (an
operator's reset), on a real Apache Kafka broker: the new events (their
offsets start at 0 again) are delivered and committed, twice:
- while the bridge runs: it may see the topic go and come back with a
  rebalance between (a fresh start) or without one (its fetch position is
  past the new log's end: librdkafka resets it to the log start, below what
  the bridge tracked);
- while the bridge is frozen (SIGSTOP, within its session timeout): it
  never sees the topic missing, no rebalance happens, and its partition's
  offsets go back to 0 under it, at once and every time (the case that
  once lost the new events: they were ignored as "already in progress").
  Ten events of the old topic are in flight then (the API refuses them
  until the partition has started over): they are delivered too, as
  nobody can read them again;
- once more frozen, with ten events of the old topic held (their app's
  wait budget is 15 minutes) when SIGTERM comes after the restart: the
  shutdown sends them rather than handing them over (there is nothing
  left to read them from).
Then SIGTERM: the bridge exits 0 within its exit bound. librdkafka 2.0.2's
destroy never returns after such a topic came back (one of its threads
never ends); the bridge must not wait for it once the group is left.
Last, a second bridge holds ten events of the old topic when it is
re-created again, and is stopped with the API down: they are lost, and
its shutdown line says so rather than "they will be redone".
Skips (77) without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ = "again.events", "again.dlq"
HELD_APPS = {"held": "key-held-SECRET4"}


def start_bridge(broker, wd, sandbox, **extra):
    """A bridge with the held app (a 15-minute wait budget), a session
    timeout that outlasts a SIGSTOP across a re-creation, and retries that
    outlast the API's refusals. @returns it and its metrics port."""
    port = h.free_port()
    bridge = h.Bridge(wd, h.bridge_settings(
        broker.bootstrap, sandbox, TOPIC, DLQ, metrics_listen=f"127.0.0.1:{port}",
        apps=",".join(f"{a}:{k}" for a, k in dict(h.APPS, **HELD_APPS).items()),
        **{"app.held.batch.max.wait.ms": "900000",
           "kafka.consumer.session.timeout.ms": "45000",
           "kafka.consumer.max.poll.interval.ms": "45000",
           "retry.max.attempts": "100", **extra}))
    return bridge, port


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    with kb.Broker() as broker:
        broker.create_topic(TOPIC, 1)
        broker.create_topic(DLQ, 1)
        seq = {}  # each user's numbering goes on in the new topic
        lines, events = h.make_events(100, users=20, seed=41, start_seq=seq)
        h.produce(broker.bootstrap, TOPIC, lines)
        sandbox = h.Sandbox(dict(h.APPS, **HELD_APPS), wd)
        bridge, port = start_bridge(broker, wd, sandbox)
        h.wait_for(lambda: h.all_committed(broker.bootstrap, "lbtest", TOPIC), 60,
                   "the first 100 events committed")
        produced = list(events)

        def recreate(n, seed, frozen, then=lambda: None, through=None):
            """Deletes the topic, creates it again with n new events (with
            the bridge stopped by SIGSTOP meanwhile when frozen), calls then,
            and waits for through() (by default: everything produced
            delivered and the new topic's events committed)."""
            what = "recreated while " + ("frozen" if frozen else "running")
            if frozen:
                os.kill(bridge.proc.pid, signal.SIGSTOP)
            try:
                broker.delete_topic(TOPIC)
                h.wait_for(lambda: TOPIC not in broker.topics(), 30, "the topic deleted")
                broker.create_topic(TOPIC, 1)
                lines, new = h.make_events(n, users=10, seed=seed, start_seq=seq)
                h.produce(broker.bootstrap, TOPIC, lines)
                produced.extend(new)
            finally:
                if frozen:
                    os.kill(bridge.proc.pid, signal.SIGCONT)
            then()

            def all_through():
                got = {a["action"]["eid"] for a in sandbox.actions()}
                return (all(e["eid"] in got for e in produced) and
                        h.all_committed(broker.bootstrap, "lbtest", TOPIC))
            h.wait_for(through or all_through, 90, f"{what}: the new topic's {n} "
                       "events through")

        recreate(50, 42, frozen=False)
        # Fewer events than the bridge's position in the last topic (50 or
        # more): its fetch there is out of range, and librdkafka starts the
        # partition over at 0 without a rebalance.
        # In flight across the re-creation: 10 events of one user (one
        # request: no outage mode) that the API refuses (503) until the
        # partition has started over under them.
        open(sandbox.down_file, "w").close()
        consumed = h.metric(port, "leanbridge_events_consumed_total")
        lines, old = h.make_events(10, users=1, seed=44, start_seq=seq)
        h.produce(broker.bootstrap, TOPIC, lines)
        produced.extend(old)
        h.wait_for(lambda: h.metric(port, "leanbridge_events_consumed_total") >= consumed + 10 and
                   (h.metric(port, 'leanbridge_requests_total{status="503"}') or 0) >= 1,
                   30, "the old topic's last events consumed, the API refusing them")
        # Phase one may have restarted the partition too (no rebalance then).
        restarted = re.compile(r"restarted below the last offset consumed: 0 after "
                               r"\d+ .* (\d+) action\(s\) taken before still go on")
        before = len(restarted.findall(bridge.log_text()))

        def api_back():
            h.wait_for(lambda: len(restarted.findall(bridge.log_text())) > before, 60,
                       "the partition restarted (logged)")
            os.unlink(sandbox.down_file)
        recreate(20, 43, frozen=True, then=api_back)
        live = int(restarted.findall(bridge.log_text())[before])
        h.check(live == 10, f"{live} old action(s) went on after the restart, want 10")

        consumed = h.metric(port, "leanbridge_events_consumed_total")
        # Users of their own, numbered afresh: none reaches a session's end
        # (a stop closes its user's window: sent at once).
        lines, held = h.make_events(10, users=5, apps=HELD_APPS, seed=45)
        h.check(all(e["action"] != "stop" for e in held), "a held event is a stop")
        h.produce(broker.bootstrap, TOPIC, lines)
        produced.extend(held)
        h.wait_for(lambda: h.metric(port, "leanbridge_events_consumed_total") >= consumed + 10,
                   30, "the held app's events consumed")
        before, held_ids = len(restarted.findall(bridge.log_text())), {e["eid"] for e in held}

        def restarted_new_sent():
            got = {a["action"]["eid"] for a in sandbox.actions()}
            return (len(restarted.findall(bridge.log_text())) > before and
                    all(e["eid"] in got for e in produced if e["eid"] not in held_ids))
        recreate(5, 46, frozen=True, through=restarted_new_sent)
        got = {a["action"]["eid"] for a in sandbox.actions()}
        h.check(not any(e["eid"] in got for e in held),
                "the held app's events were sent before the shutdown")
        restarts = h.metric(port, "leanbridge_partition_restarts_total")
        h.check(restarts is not None and restarts >= 1,
                f"leanbridge_partition_restarts_total is {restarts}, want >= 1")
        m = re.search(r"exit bound (\d+) ms", bridge.log_text())
        h.check(m is not None, "no 'exit bound N ms' in the startup log")
        bound_s = int(m.group(1)) / 1000
        t0 = time.monotonic()
        rc = bridge.stop(timeout=bound_s + 5)
        took = time.monotonic() - t0
        h.log(f"SIGTERM -> exit {rc} in {took:.1f} s (exit bound {bound_s:.0f} s)")
        h.check(rc == 0, f"bridge exit code {rc}")
        h.check(took <= bound_s, f"exit took {took:.1f} s, over the {bound_s:.0f} s bound")
        h.check_invariants(produced, sandbox, [])
        lost_at_shutdown(broker, wd, sandbox, seq)
        sandbox.stop()
    print("1 passed, 0 failed")


def lost_at_shutdown(broker, wd, sandbox, seq):
    """A second bridge: ten held events of the old topic when it is
    re-created under the frozen bridge, then SIGTERM with the API down
    (503) and a short shutdown.timeout.ms. They are sent at once, refused
    and given up at the end: lost, as nobody can read them again. The
    shutdown's summary must say so rather than count them among those
    "they will be redone"."""
    bridge, port = start_bridge(broker, wd, sandbox, **{"shutdown.timeout.ms": "3000"})
    h.wait_for(lambda: h.metric(port, "leanbridge_partitions_assigned") == 1, 60,
               "the second bridge assigned")
    lines, held = h.make_events(10, users=5, apps=HELD_APPS, seed=47)
    h.produce(broker.bootstrap, TOPIC, lines)
    h.wait_for(lambda: (h.metric(port, "leanbridge_events_consumed_total") or 0) >= 10, 30,
               "the held events consumed")
    os.kill(bridge.proc.pid, signal.SIGSTOP)
    try:
        broker.delete_topic(TOPIC)
        h.wait_for(lambda: TOPIC not in broker.topics(), 30, "the topic deleted")
        broker.create_topic(TOPIC, 1)
        lines, new = h.make_events(3, users=3, seed=48, start_seq=seq)
        h.produce(broker.bootstrap, TOPIC, lines)
    finally:
        os.kill(bridge.proc.pid, signal.SIGCONT)

    def new_through():
        got = {a["action"]["eid"] for a in sandbox.actions()}
        return ("10 action(s) taken before still go on" in bridge.log_text() and
                all(e["eid"] in got for e in new) and
                h.all_committed(broker.bootstrap, "lbtest", TOPIC))
    h.wait_for(new_through, 90, "restarted (10 held before), the new events through")
    open(sandbox.down_file, "w").close()
    try:
        rc = bridge.stop(timeout=120)
    finally:
        os.unlink(sandbox.down_file)
    h.check(rc == 0, f"second bridge exit code {rc}")
    got = {a["action"]["eid"] for a in sandbox.actions()}
    h.check(not any(e["eid"] in got for e in held), "a held event was accepted by a 503 API")
    log = bridge.log_text()
    m = re.search(r"not finished within shutdown\.timeout\.ms: (\d+) given up, their "
                  r"offsets are not committed \(they will be redone(.*?)\);", log)
    h.check(m is not None, "no shutdown give-up line in the second bridge's log")
    lost = re.match(r", but for (\d+) taken before a partition restarted: lost", m.group(2))
    h.check(lost is not None and 1 <= int(lost.group(1)) <= int(m.group(1)),
            f"the give-up line does not say which are lost: {m.group(0)!r}")
    h.log(f"second bridge: {m.group(0)}")


main()
