"""The binary's configuration layers and the Kafka settings it forces.
- One key set in the file, the environment and -X: -X wins, then the
  environment, then the file (read back from --check-config's summary).
- A user's kafka.consumer.enable.auto.offset.store=true and
  enable.auto.commit=true, and kafka.producer.acks=1, lose to the forced
  values: with the API down nothing is committed (an automatic store and
  commit would commit consumed offsets; the bridge commits itself, with the
  offset map), once it is up everything is, and the poison event is
  dead-lettered (acks=1 with idempotence would not even start)."""
import os
import subprocess
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
BASE = ["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
        "-X", "dlq.topic=dlq", "-X", "apps=app1:key1"]

wd = h.workdir()
conf = os.path.join(wd, "layers.conf")
with open(conf, "w") as f:
    f.write("api.url = http://127.0.0.1:1/file\n")


def api_url(env, x):
    e = {"PATH": os.environ["PATH"]}
    e.update(env)
    args = [h.BRIDGE, "-c", conf, *BASE, *x, "--check-config"]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=e, timeout=60)
    h.check(p.returncode == 0, f"--check-config failed: {p.stdout!r}")
    out = p.stdout.decode()
    return out[out.index("API ") + 4:].split()[0]


ENV = {"LEANBRIDGE_API_URL": "http://127.0.0.1:1/env"}
X = ["-X", "api.url=http://127.0.0.1:1/x"]
h.check(api_url({}, []) == "http://127.0.0.1:1/file", "the file is not read")
h.check(api_url(ENV, []) == "http://127.0.0.1:1/env", "the environment does not beat the file")
h.check(api_url(ENV, X) == "http://127.0.0.1:1/x", "-X does not beat the environment")
h.check(api_url({}, X) == "http://127.0.0.1:1/x", "-X does not beat the file")

kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
sandbox.set_down(True)
lines, events = h.make_events(200, users=20, seed=43)
lines.append("poison\tnot json")
h.produce(kafka.bootstrap, TOPIC, lines)
bridge = h.Bridge(wd, h.bridge_settings(
    kafka.bootstrap, sandbox, TOPIC, DLQ,
    **{"kafka.consumer.enable.auto.offset.store": "true",
       "kafka.consumer.enable.auto.commit": "true",
       "kafka.producer.acks": "1"}))
h.wait_for(lambda: sandbox.stats()["requests"] > 3, 60, "requests refused by the down API")
time.sleep(3)  # several auto-commit intervals (1 s)
rows = h.committed(kafka.bootstrap, "lbtest", TOPIC)
h.check(all(off <= 0 for _, off, _ in rows),
        f"offsets committed while nothing was delivered: {rows}")
sandbox.set_down(False)
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
dlq = h.read_topic(kafka.bootstrap, DLQ)
h.check([r["key"] for r in dlq] == ["poison"], f"DLQ: {[r['key'] for r in dlq]}")
counts = h.check_invariants(events, sandbox, [])
h.log(f"config layers and forced settings: {counts}")
print("1 passed, 0 failed")
