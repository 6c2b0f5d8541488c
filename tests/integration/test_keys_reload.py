"""Client keys without a restart: apps=@FILE is read again on SIGHUP and
when the file changes. New requests carry the new key (the sandbox, started
again with only the new key, accepts every event sent after the reload);
nothing is lost or dead-lettered; a bad file keeps the old keys, says why in
the log and counts a failure; leanbridge_apps_reloads_total counts reloads;
a file reloaded readable by others is warned about, as at startup; no key
is ever printed."""
import os
import re
import signal

import harness as h

TOPIC, DLQ = "events", "events.dlq"


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 3, DLQ: 1})
api_port = h.free_port()
sandbox = h.Sandbox(h.key_generation(1), wd, name="sb1", extra=["--port", str(api_port)])
apps_file = os.path.join(wd, "apps")
h.write_apps(apps_file, h.key_generation(1))

port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, metrics_listen=f"127.0.0.1:{port}")
settings["apps"] = "@" + apps_file
bridge = h.Bridge(wd, settings)
all_events, seqs, total = [], {}, 0


def send_and_wait(n, seed, sb, what):
    global total
    before = sb.accepted_count()
    lines, events = h.make_events(n, users=60, seed=seed, start_seq=seqs)
    h.produce(kafka.bootstrap, TOPIC, lines)
    all_events.extend(events)
    total += n
    h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120, f"all committed ({what})")
    got = sb.accepted_count() - before
    h.check(got == n, f"{what}: the sandbox accepted {got} of {n} with its key")


send_and_wait(300, 1, sandbox, "first keys")

# SIGHUP after a rotation; then only the new keys work at the API.
h.write_apps(apps_file, h.key_generation(2))
bridge.proc.send_signal(signal.SIGHUP)
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reloads_total") == 1, 20, "the SIGHUP reload")
sandbox.stop()
sandbox = h.Sandbox(h.key_generation(2), wd, name="sb2", extra=["--port", str(api_port)])
send_and_wait(300, 2, sandbox, "after SIGHUP")

# A bad file: refused, the old keys stay.
with open(apps_file + ".tmp", "w") as f:
    f.write("app_alpha:only-one-line-broken\nnot a pair\n")
os.replace(apps_file + ".tmp", apps_file)
bridge.proc.send_signal(signal.SIGHUP)
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reload_failures_total") == 1, 20, "a refused reload")
h.check(h.metric(port, "leanbridge_apps_reloads_total") == 1, "a refused reload is not a reload")
send_and_wait(200, 3, sandbox, "after a bad file")

# A changed file, no signal (a Secret update): picked up within seconds.
h.write_apps(apps_file, h.key_generation(3))
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reloads_total") == 2, 30, "the reload of a changed file")
sandbox.stop()
sandbox = h.Sandbox(h.key_generation(3), wd, name="sb3", extra=["--port", str(api_port)])
send_and_wait(300, 4, sandbox, "after the file changed")

# A reload of a file others may read says so, as the start does.
h.check("readable by other users" not in bridge.log_text(), "a 0600 file warned about")
h.write_apps(apps_file, h.key_generation(4))
os.chmod(apps_file, 0o644)
bridge.proc.send_signal(signal.SIGHUP)
h.wait_for(lambda: h.metric(port, "leanbridge_apps_reloads_total") == 3, 20, "the fourth reload")
h.wait_for(lambda: "readable by other users" in bridge.log_text(), 10,
           "the warning about a world-readable apps file at its reload")

h.check(bridge.stop() == 0, "exit 0")
dead = h.read_topic(kafka.bootstrap, DLQ)
h.check(not dead, f"{len(dead)} dead letters")
log = bridge.log_text()
h.check("SIGHUP: apps file reloaded, 3 client key(s) changed" in log, "the reload is logged")
h.check(re.search(r"not reloaded.*line 2", log) is not None, "a refused reload says why")
h.check("apps file changed: apps file reloaded" in log, "a changed file is logged as the cause")
for gen in (1, 2, 3, 4):
    for k in h.key_generation(gen).values():
        h.check(k not in log, "a client key in the log")
h.log(f"{total} events over three key generations: all delivered with the key of their time, 0 dead letters")
print("1 passed, 0 failed")
