"""Exit codes the README promises: 2 on a stray argument; signals before the
configuration is read are handled (SIGHUP does not kill, SIGTERM exits 0
once started); SIGINT stops like
SIGTERM (drain, commit, exit 0); 1 on a fatal error of the dead-letter
producer, with nothing committed past the record it could not write."""
import json
import os
import re
import signal
import subprocess
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
BASE = ["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
        "-X", "dlq.topic=dlq", "-X", "apps=app1:key1"]

p = subprocess.run([h.BRIDGE, *BASE, "stray"], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, timeout=60)
h.check(p.returncode == 2, f"a stray argument: exit {p.returncode}")
h.check(b"stray" in p.stdout, f"the stray argument is not named: {p.stdout!r}")

# Signals that come before the configuration is read (here: a FIFO nobody
# writes yet) are the bridge's too: SIGHUP does not kill it (its default
# action would, exit 129), and a SIGTERM then stops it cleanly, exit 0,
# once it can start.
fifo_dir = h.workdir()
fifo = f"{fifo_dir}/leanbridge.conf"
os.mkfifo(fifo)
early = subprocess.Popen([h.BRIDGE, "-c", fifo, *BASE], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
time.sleep(0.5)
early.send_signal(signal.SIGHUP)
early.send_signal(signal.SIGTERM)
time.sleep(0.5)
h.check(early.poll() is None, f"a signal before the configuration: exit {early.poll()}")
with open(fifo, "w") as f:
    f.write("log.level = info\n")
rc = early.wait(timeout=60)
out = early.stdout.read().decode()
h.check(rc == 0, f"SIGHUP and SIGTERM before the configuration: exit {rc}: {out[-500:]}")

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd, extra=["--delay-ms", "300"])
lines, events = h.make_events(300, users=30, seed=41)
h.produce(kafka.bootstrap, TOPIC, lines)
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ)
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: sandbox.stats()["requests"] > 0, 60, "requests at the API")
rc = bridge.stop(signal.SIGINT)
h.check(rc == 0, f"SIGINT: exit {rc}")
h.check(re.search(r"stopping: \d+ held action\(s\) left for the next owner; draining", bridge.log_text()),
        "SIGINT did not drain")

# The next Produce request fails with OUT_OF_ORDER_SEQUENCE_NUMBER (45): fatal for
# an idempotent producer.
good = json.dumps({"appId": "app_alpha", "userId": "z", "action": "start"})
h.produce(kafka.bootstrap, TOPIC, ["poison\tnot json", f"z\t{good}"])
end = h.committed(kafka.bootstrap, "lbtest", TOPIC)[0][2]
kafka.command("produce-errors 1 45")
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: not bridge.alive(), 20, "the bridge to stop on the fatal error")
rc = bridge.stop()
h.check(rc == 1, f"fatal dead-letter producer error: exit {rc}")
h.check("fatal producer error" in bridge.log_text(), "the fatal error is not logged")
part, off, high = h.committed(kafka.bootstrap, "lbtest", TOPIC)[0]
h.check(off <= end - 2, f"committed {off} past the poison event at {end - 2}")
print("1 passed, 0 failed")
