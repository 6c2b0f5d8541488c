"""End to end on a real Apache Kafka broker (KRaft, from Maven Central), the
real binary and the sandbox API. Scenarios:
  1. scale-out: 200k events, 20 apps, 50k users, 12 partitions; 1 instance,
     grown to 3 during the run, shrunk back to 1;
  2. crash: SIGKILL one of three instances several times under load;
  3. broker restart while events keep coming, after the first commits, with
     librdkafka's default 45 s session timeout (the member is not evicted);
  4. poison events in a real DLQ topic, read back with kcat.
Each checks: delivered + dead-lettered = produced, per-user order, no request
over a limit, no concurrent request for a user, committed offsets at the end.
Without a broker (no Java/Maven/network) it reports SKIPPED with the reason,
unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1, where that is a failure."""
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

APPS20 = {f"app_{i:02d}": f"key-{i:02d}-SECRET" for i in range(20)}
results = []


def settings(broker, sandbox, topic, dlq, group, **extra):
    s = h.bridge_settings(broker.bootstrap, sandbox, topic, dlq, group=group, **extra)
    s["apps"] = ",".join(f"{a}:{k}" for a, k in APPS20.items())
    return s


def finish(broker, group, topic, bridges, timeout=600):
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, topic), timeout,
               f"committed offsets of {group} at the end of {topic}")
    for b in bridges:
        if b.alive():
            rc = b.stop()
            h.check(rc == 0, f"{b.name} exit code {rc}\n{b.log_text()[-2000:]}")


def prepare(broker, wd, name, partitions, dlq_partitions, n, users, seed, sandbox_extra=()):
    """Topics "<name>.events" and "<name>.dlq", a sandbox, n events produced."""
    topic, dlq = f"{name}.events", f"{name}.dlq"
    broker.create_topic(topic, partitions)
    broker.create_topic(dlq, dlq_partitions)
    sandbox = h.Sandbox(APPS20, wd, extra=list(sandbox_extra))
    lines, events = h.make_events(n, users=users, apps=APPS20, seed=seed)
    h.produce(broker.bootstrap, topic, lines)
    return topic, dlq, sandbox, events


def conclude(broker, label, group, topic, dlq, sandbox, events, bridges):
    """Waits for the commits, stops the bridges, checks every event was
    delivered once or more, records the counts."""
    finish(broker, group, topic, bridges)
    counts = h.check_invariants(events, sandbox, h.read_topic(broker.bootstrap, dlq))
    h.check(counts["delivered"] == len(events), f"{counts}")
    results.append((label, counts))
    sandbox.stop()


def scale_out(broker, wd):
    group, n = "s1", 200000
    topic, dlq, sandbox, events = prepare(broker, wd, group, 12, 3, n, 50000, 101)
    s = settings(broker, sandbox, topic, dlq, group)
    a = h.Bridge(wd, s, name="s1-a")
    h.wait_for(lambda: sandbox.accepted_count() > n // 5, 300, "20% delivered")
    more = [h.Bridge(wd, s, name=f"s1-{x}") for x in "bc"]
    h.log(f"scale-out: grown to 3 at {sandbox.accepted_count()} accepted")
    h.wait_for(lambda: sandbox.accepted_count() > (n * 3) // 5, 300, "60% delivered")
    for b in more:
        h.check(b.stop() == 0, f"{b.name} exit code")
    h.log(f"scale-out: shrunk to 1 at {sandbox.accepted_count()} accepted")
    conclude(broker, "scale-out 1->3->1", group, topic, dlq, sandbox, events, [a])


def crash(broker, wd):
    group, n = "s2", 100000
    topic, dlq, sandbox, events = prepare(broker, wd, group, 12, 3, n, 20000, 102,
                                          ["--delay-ms", "5"])
    s = settings(broker, sandbox, topic, dlq, group)
    bridges = [h.Bridge(wd, s, name=f"s2-{x}") for x in "abc"]
    for k in range(3):
        # Kill after another sixth of the events, or once everything is
        # committed: a fast run can finish before the third kill, and the
        # redone work after a kill need not reach a sixth.
        target = sandbox.accepted_count() + n // 6
        h.wait_for(lambda: sandbox.accepted_count() > target
                   or h.all_committed(broker.bootstrap, group, topic), 300,
                   "progress before the kill")
        victim = bridges[k % 3]
        victim.stop(signal.SIGKILL)
        h.log(f"crash: SIGKILL {victim.name} at {sandbox.accepted_count()} accepted")
        victim.start()
    conclude(broker, "crash: SIGKILL x3 of 3 instances", group, topic, dlq, sandbox, events,
             bridges)


def broker_restart(broker, wd):
    """The broker restarts while events keep coming, after the bridge has
    committed: with a session timeout longer than the outage (librdkafka's
    default 45 s) the member is not evicted, commits resume, and only work
    whose commit was under way may be redone."""
    group, n = "s3", 60000
    topic, dlq = f"{group}.events", f"{group}.dlq"
    broker.create_topic(topic, 6)
    broker.create_topic(dlq, 1)
    sandbox = h.Sandbox(APPS20, wd, extra=["--delay-ms", "5"])
    lines, events = h.make_events(n, users=10000, apps=APPS20, seed=103)
    first = n // 3
    h.produce(broker.bootstrap, topic, lines[:first])
    b = h.Bridge(wd, settings(broker, sandbox, topic, dlq, group,
                              kafka_consumer_session_timeout_ms=45000,
                              kafka_consumer_max_poll_interval_ms=60000))
    h.wait_for(lambda: not b.alive() or h.all_committed(broker.bootstrap, group, topic), 300,
               "the first third committed")
    h.check(b.alive(), f"the bridge exited: {b.log_text()[-2000:]}")
    rest = b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n"
                   for l in lines[first:])
    producer = h.spawn([h.KAFKATOOL, "produce", "-b", broker.bootstrap, "-t", topic,
                        "-r", "8000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    feeder = threading.Thread(target=producer.communicate, args=(rest,))
    feeder.start()
    h.wait_for(lambda: sandbox.accepted_count() > first + 4000, 300, "the rest arriving")
    h.log(f"broker restart at {sandbox.accepted_count()} accepted")
    broker.restart(downtime_s=5)
    feeder.join(300)
    h.check(not feeder.is_alive() and producer.returncode == 0,
            f"the producer must ride out the restart (exit {producer.returncode})")
    h.check(b.alive(), "the bridge must survive a broker restart")
    conclude(broker, "broker restart under load (45 s session timeout)", group, topic, dlq,
             sandbox, events, [b])


def dlq_real_topic(broker, wd):
    topic, dlq, group = "s4.events", "s4.dlq", "s4"
    broker.create_topic(topic, 3)
    broker.create_topic(dlq, 1)
    sandbox = h.Sandbox(APPS20, wd)
    lines, events = h.make_events(2000, users=300, apps=APPS20, seed=104)
    poison = {"p-notjson": (b"not json", "parse"),
              "p-unknownapp": (b'{"appId":"nope","userId":"u","action":"start"}', "validate"),
              "p-clientkey": (b'{"appId":"app_01","userId":"u","action":"start","clientKey":"x"}', "validate"),
              "p-badaction": (b'{"appId":"app_02","userId":"u9","action":"noSuchAction"}', "api")}
    lines += [k.encode() + b"\t" + v for k, (v, _) in poison.items()]
    h.produce(broker.bootstrap, topic, lines)
    b = h.Bridge(wd, settings(broker, sandbox, topic, dlq, group))
    finish(broker, group, topic, [b])
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", dlq, "-e", "-q",
                          "-f", "%k\t%h\n"], stdout=subprocess.PIPE, timeout=60).stdout.decode()
    seen = {}
    for line in out.splitlines():
        key, _, hdrs = line.partition("\t")
        seen[key] = dict(kv.split("=", 1) for kv in hdrs.split(","))
    for key, (_, stage) in poison.items():
        h.check(key in seen, f"{key} not in the DLQ (kcat saw {sorted(seen)})")
        hd = seen[key]
        h.check(hd.get("leanbridge.error.stage") == stage, f"{key}: {hd}")
        for name in ("leanbridge.error.message", "leanbridge.source.topic",
                     "leanbridge.source.partition", "leanbridge.source.offset",
                     "leanbridge.attempts"):
            h.check(name in hd, f"{key}: header {name} missing: {hd}")
    h.check(len(seen) == len(poison), f"DLQ holds {len(seen)} records, want {len(poison)}")
    counts = h.check_invariants(events, sandbox, [])
    results.append(("DLQ on a real topic (kcat)", dict(counts, dead_lettered=len(seen))))
    sandbox.stop()


def main():
    kb.skip_unless_available(h.fail)
    t0 = time.time()
    with kb.Broker() as broker:
        h.log(f"Kafka {broker.version} at {broker.bootstrap} (started in {time.time() - t0:.1f}s)")
        for scenario in (dlq_real_topic, broker_restart, crash, scale_out):
            t = time.time()
            scenario(broker, h.workdir())
            h.log(f"{scenario.__name__}: {results[-1][1]} in {time.time() - t:.0f}s")
        version = broker.version
    print(f"\nreal Kafka {version} end to end:")
    for name, c in results:
        print(f"  {name}: produced {c['produced']}, delivered {c['delivered']}, "
              f"dead-lettered {c['dead_lettered']}, duplicates {c['duplicates']}")
    print(f"{len(results)} passed, 0 failed")


main()
