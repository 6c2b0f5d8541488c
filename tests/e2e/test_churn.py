"""Churn on a real Apache Kafka broker: instances join and leave the group
every few seconds while each request takes 2 s at the API and most are
split by 403s (the sandbox allows 5 users / 20 actions, the bridge packs
10 / 40), rebalance.timeout.ms (300) is far below the request time, and
poison events are mixed in. Every SIGTERM exits 0 (ASan build: clean), no
request overlaps another for the same user at the API (across instances
too), nothing is lost, and the only dead letters are the poison events (no
DLQ record for an event that was delivered). No librdkafka callback turns
the loop: every revocation is answered from the loop, and each instance's
leanbridge_loop_nested_total is 0 when it stops. Skips (77) without a
broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

N, USERS, POISON = 3000, 300, 30
CHURN_S, STEP_S = 60, 4


def churn(broker, wd):
    topic, dlq, group = "churn.events", "churn.dlq", "churn"
    broker.create_topic(topic, 6)
    broker.create_topic(dlq, 1)
    sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "2000", "--max-users", "5",
                                           "--max-actions", "20"])
    lines, events = h.make_events(N, users=USERS, seed=61)
    rnd = random.Random(61)
    for i in range(POISON):
        lines.insert(rnd.randrange(len(lines)), f"poison-{i}\tnot json {i}")
    h.produce(broker.bootstrap, topic, lines)
    s = h.bridge_settings(broker.bootstrap, sandbox, topic, dlq, group=group,
                          rebalance_timeout_ms=300, api_timeout_ms=10000,
                          shutdown_timeout_ms=30000, batch_max_users=10,
                          batch_max_actions=40)
    def start(n):
        port = h.free_port()
        b = h.Bridge(wd, dict(s, **{"metrics.listen": f"127.0.0.1:{port}"}), name=f"churn-{n}")
        b.port = port
        return b

    def stop(b):
        nested = h.metric(b.port, "leanbridge_loop_nested_total")
        rc = b.stop(timeout=90)
        h.check(rc == 0, f"{b.name} exit code {rc}\n{b.log_text()[-3000:]}")
        h.check(nested == 0, f"{b.name}: the loop nested {nested} time(s)")
        answered[0] += b.log_text().count("revocation answered")

    answered = [0]
    live = [start(0)]
    started, stopped = 1, 0
    deadline = time.time() + CHURN_S
    while time.time() < deadline:
        time.sleep(STEP_S)
        if len(live) < 3 and (len(live) == 1 or rnd.random() < 0.5):
            live.append(start(started))
            started += 1
        else:
            stop(live.pop(rnd.randrange(len(live))))
            stopped += 1
        h.log(f"churn: {len(live)} instance(s), {sandbox.accepted_count()} accepted")
    h.wait_for(lambda: h.all_committed(broker.bootstrap, group, topic), 600,
               "committed offsets at the end of every partition")
    for b in live:
        stop(b)
    h.check(answered[0] > 0, "no revocation was answered from the loop")
    records = h.read_topic(broker.bootstrap, dlq)
    keys = sorted(r["key"] for r in records)
    h.check(all(k.startswith("poison-") for k in keys),
            f"dead letters other than the poison events: {[k for k in keys if not k.startswith('poison-')][:5]}")
    h.check(len(set(keys)) == POISON, f"{len(set(keys))} poison events dead-lettered, want {POISON}")
    counts = h.check_invariants(events, sandbox, records, limit_403_ok=True)
    h.check(counts["delivered"] == N, f"{counts}")
    st = sandbox.stats()
    h.check(st["limit_violations"] > 0, "no request was split")
    h.log(f"churn: {started} started, {stopped + len(live)} stopped; {counts}; "
          f"overlaps {st['user_overlap']}, 403s {st['limit_violations']}, "
          f"{answered[0]} revocation(s) answered from the loop")


def main():
    kb.skip_unless_available(h.fail)
    with kb.Broker() as broker:
        h.log(f"Kafka {broker.version} at {broker.bootstrap}")
        churn(broker, h.workdir())
    print("1 passed, 0 failed")


main()
