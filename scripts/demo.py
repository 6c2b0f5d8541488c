"""demo.py: the main job on an embedded default. Starts librdkafka's mock
cluster, the sandbox API and the bridge (conf/demo.conf), produces the
sample events of conf/sample-events.jsonl keyed by user, waits until every
offset is committed, stops the bridge with SIGTERM and prints a summary."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness as h  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
TOPIC, DLQ, GROUP = "demo.events", "demo.events.dlq", "leanbridge-demo"
APPS = {"demo_shop": "demo-shop-key", "demo_game": "demo-game-key", "demo_news": "demo-news-key"}

wd = h.workdir()
h.log(f"work directory {wd}")
kafka = h.MockKafka({TOPIC: 4, DLQ: 1})
h.log(f"mock Kafka cluster at {kafka.bootstrap}")
sandbox = h.Sandbox(APPS, wd)
h.log(f"sandbox API at {sandbox.url}")

with open(os.path.join(ROOT, "conf", "sample-events.jsonl")) as f:
    events = [l.strip() for l in f if l.strip()]
lines = [json.loads(e)["userId"] + "\t" + e for e in events]
h.produce(kafka.bootstrap, TOPIC, lines)
h.log(f"produced {len(lines)} events to {TOPIC}")

t0 = time.time()
bridge = h.Bridge(wd, {"kafka.bootstrap.servers": kafka.bootstrap, "api.url": sandbox.url},
                  config_file=os.path.join(ROOT, "conf", "demo.conf"))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, GROUP, TOPIC), 120,
           "every offset committed")
elapsed = time.time() - t0
rc = bridge.stop()

reqs = []
with open(sandbox.req_path) as f:
    reqs = [json.loads(l) for l in f if l.strip()]
ok = [r for r in reqs if r.get("status") == 200]
rows = h.committed(kafka.bootstrap, GROUP, TOPIC)
dlq = h.read_topic(kafka.bootstrap, DLQ)
users = [r["users"] for r in ok]
print()
print("leanbridge demo summary")
print(f"  events consumed          {len(events)}")
print(f"  actions delivered        {len(sandbox.accepted())}")
print(f"  dead-lettered            {len(dlq)}")
print(f"  requests sent            {len(reqs)} ({len(ok)} answered 200)")
print(f"  actions per request      {len(sandbox.accepted()) / max(len(ok), 1):.1f}")
print(f"  distinct users/request   avg {sum(users) / max(len(users), 1):.1f}, max {max(users, default=0)}")
print(f"  billable user lookups    {sum(users)} ({sum(users) / max(len(events), 1):.2f} per action)")
print(f"  offsets committed        {sum(o for _, o, _ in rows)} of {sum(hi for _, _, hi in rows)} "
      f"in {len(rows)} partitions")
print(f"  time to commit all       {elapsed:.1f} s (includes ~3 s consumer group join)")
print(f"  bridge exit code         {rc}")
print(f"  bridge log               {bridge.log_path}")
sys.exit(0 if rc == 0 and sum(o for _, o, _ in rows) == len(events) else 1)
