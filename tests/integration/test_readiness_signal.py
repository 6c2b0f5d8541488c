"""Readiness and the scaling signal, as an orchestrator sees them.

1. A quiet topic: /readyz answers 200 within 5 s of the group join (an
   empty assignment counts: a second member with no partition is ready
   too), never "waiting for traffic".
2. leanbridge_consume_delay_seconds: 0 while the topic is quiet; near 0 on
   events that arrive as they are written, although the wait budget holds
   them (lag is then about rate x budget); high on a backlog written an
   hour ago.
3. After a revocation (a second member joins), the first member's
   leanbridge_consumer_lag series name only the partitions it still owns.
4. An unreachable API: not ready once a request failed at the transport
   level; ready again after the API answers.
"""
import json
import re
import subprocess
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"


def lag_partitions(port):
    text = h.http_get(port, "/metrics")[1]
    return {int(p) for p in re.findall(r'^leanbridge_consumer_lag\{topic="events",partition="(\d+)"\}', text, re.M)}


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)

# 1. Quiet topic: ready within 5 s of the join.
port = h.free_port()
a = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, batch_max_wait_ms=20000,
                                   metrics_listen=f"127.0.0.1:{port}",
                                   kafka_statistics_interval_ms=500), name="a")
h.wait_for(lambda: (h.metric(port, "leanbridge_partitions_assigned") or 0) == 2, 60, "a's join")
joined = time.time()
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 5, "/readyz within 5 s of the join on a quiet topic")
h.log(f"ready {time.time() - joined:.2f} s after the join, no event ever produced")
h.check(h.metric(port, "leanbridge_consume_delay_seconds") == 0, "consume delay 0 on a quiet topic")

# 2a. Events as they are written, held by a 20 s budget: delay near 0, lag not.
lines, events = h.make_events(300, users=100, seed=5)
for i in range(0, len(lines), 30):
    h.produce(kafka.bootstrap, TOPIC, lines[i:i + 30])
    time.sleep(0.2)
time.sleep(1.5)  # a statistics interval or two for the lag
delay = h.metric(port, "leanbridge_consume_delay_seconds")
lag = sum(float(v) for v in re.findall(r'^leanbridge_consumer_lag\{[^}]*\} (\S+)$',
                                        h.http_get(port, "/metrics")[1], re.M))
pending = h.metric(port, "leanbridge_pending_actions")
h.log(f"live traffic under a 20 s budget: delay {delay} s, lag {lag:.0f}, pending {pending:.0f}")
h.check(delay is not None and delay < 2, f"consume delay near 0 on live traffic ({delay})")
h.check(pending > 0 and lag > 0, f"the budget holds actions uncommitted (pending {pending}, lag {lag})")

# 2b. A backlog written an hour ago: the delay is about its age.
old = [f"{e['userId']}\t" + json.dumps(e, separators=(",", ":")) for e in h.make_events(2000, users=400, seed=6)[1]]
p = subprocess.run([h.KAFKATOOL, "produce", "-b", kafka.bootstrap, "-t", TOPIC, "-a", "3600000"],
                   input="".join(l + "\n" for l in old).encode(), stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=120)
h.check(p.returncode == 0, f"produce the backlog: {p.stderr.decode()[-500:]}")
seen = h.wait_for(lambda: (h.metric(port, "leanbridge_consume_delay_seconds") or 0) > 3000 and
                  h.metric(port, "leanbridge_consume_delay_seconds"), 30, "the delay of an hour-old backlog")
h.log(f"backlog written an hour ago: delay {seen} s")
h.wait_for(lambda: h.metric(port, "leanbridge_consume_delay_seconds") == 0, 60,
           "the delay back to 0 once the backlog is consumed")

# 3. A second member joins (an empty assignment for one of them is fine:
# 2 partitions, but each gets one) and the first's lag series follow.
port_b = h.free_port()
b = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, batch_max_wait_ms=1000,
                                   metrics_listen=f"127.0.0.1:{port_b}",
                                   kafka_statistics_interval_ms=500), name="b")
h.wait_for(lambda: h.metric(port_b, "leanbridge_partitions_assigned") == 1 and
           h.metric(port, "leanbridge_partitions_assigned") == 1, 60, "the partitions split over a and b")
h.wait_for(lambda: h.http_get(port_b, "/readyz")[0] == 200, 10, "b ready")
h.wait_for(lambda: len(lag_partitions(port)) == 1, 10, "a's lag series: only the partition it owns")
h.check(lag_partitions(port) != lag_partitions(port_b) or not lag_partitions(port_b),
        "a and b report lag for different partitions")
h.log(f"after the revocation: a reports lag of {lag_partitions(port)}, b of {lag_partitions(port_b)}")
# A third member: three members, two partitions: one has an empty assignment
# and is ready all the same.
port_c = h.free_port()
c = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                   metrics_listen=f"127.0.0.1:{port_c}"), name="c")
h.wait_for(lambda: sum(h.metric(x, "leanbridge_partitions_assigned") or 0 for x in (port, port_b, port_c)) == 2 and
           all(h.http_get(x, "/readyz")[0] == 200 for x in (port, port_b, port_c)), 60,
           "three members on two partitions, all ready")
h.check(c.stop() == 0, "c exits 0")
h.check(b.stop() == 0, "b exits 0")

# 4. The API unreachable: unready after a transport failure, ready after an answer.
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed")
sandbox.stop()
more, _ = h.make_events(20, users=5, seed=99)
h.produce(kafka.bootstrap, TOPIC, more)
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 503, 60, "/readyz 503 with the API unreachable")
h.check("API" in h.http_get(port, "/readyz")[1], "the reason names the API")
sandbox2 = h.Sandbox(h.APPS, wd, name="sandbox2", extra=["--port", str(sandbox.port)])
h.wait_for(lambda: h.http_get(port, "/readyz")[0] == 200, 60, "/readyz 200 once the API answers again")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, "all committed after the outage")
h.check(a.stop() == 0, "a exits 0")
print("1 passed, 0 failed")
