"""A name server that never answers must not stop the loop. libcurl 7.88
looks names up in a thread, and when a transfer times out in the middle of
a lookup it waited for that thread (Curl_resolver_kill) inside
curl_multi_perform unless CURLOPT_QUICK_EXIT is set: the whole loop, Kafka
polling, commits and the health beat with it, stood still until the
system's resolver gave up (timeout:5 attempts:2 here, 10 s a name, more
with the search domains of a Kubernetes pod, 40 s a lookup), and /healthz
answered "loop stalled", so an orchestrator would restart a bridge that was
only waiting for DNS; SIGTERM waited for it too.

The bridge runs in a mount namespace of its own (unshare -m) whose
/etc/resolv.conf names a UDP socket on 127.0.0.153:53 that reads and never
answers, with a pod's search domains and ndots:5; api.url names a host only that server could resolve, with
api.timeout.ms=1500. Passes when, over 25 s of lookups timing out one after
another, /healthz stayed 200 (the loop's beat is at most 10 s old, so a
single stall of 10 s fails it), the requests failed as lookups that timed
out, and the bridge exits 0 within 8 s of SIGTERM (a 2 s drain, then the
requests that time out in 1.5 s). The binary without CURLOPT_QUICK_EXIT
fails both: /healthz 503 "loop stalled" from 14.5 s on, and 38 s from
SIGTERM to exit.

Needs root (port 53, unshare -m, mount --bind): without it the test exits
77 (skipped), except under CI=true, where that is a failure."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"
NAMESERVER = "127.0.0.153"


def skip(why):
    if os.environ.get("CI") == "true":
        h.fail(f"{why}; CI=true requires root and unshare")
    h.log(f"SKIP: {why}")
    sys.exit(77)


if os.geteuid() != 0:
    skip("not root: cannot bind port 53 nor mount a resolv.conf")
if not shutil.which("unshare"):
    skip("no unshare (util-linux)")
probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
if probe.returncode != 0:
    skip(f"unshare -m refused: {probe.stderr.decode().strip()}")

# The silent name server: reads every query, answers none.
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind((NAMESERVER, 53))
queries = [0]


def swallow():
    while True:
        try:
            dns.recvfrom(4096)
        except OSError:
            return
        queries[0] += 1


threading.Thread(target=swallow, daemon=True).start()

wd = h.workdir()
resolv = os.path.join(wd, "resolv.conf")
with open(resolv, "w") as f:
    # as in a Kubernetes pod: every name tried under three search domains
    f.write(f"search ns.svc.cluster.local svc.cluster.local cluster.local\n"
            f"nameserver {NAMESERVER}\noptions ndots:5 timeout:5 attempts:2\n")
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(40, users=8, seed=5)
h.produce(kafka.bootstrap, TOPIC, lines)
mport = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, api_timeout_ms=1500,
                             shutdown_timeout_ms=2000, metrics_listen=f"127.0.0.1:{mport}")
settings["api.url"] = f"http://api.leanbridge-dns-stall.test:{sandbox.port}/api?action=multi"
wrapper = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
           resolv]
bridge = h.Bridge(wd, settings, wrapper=wrapper)
h.wait_for(lambda: h.http_get(mport, "/healthz")[0] == 200, 30, "/healthz answers")
t0 = time.monotonic()
bad = []
while time.monotonic() - t0 < 25:
    status, body = h.http_get(mport, "/healthz")
    if status != 200:
        bad.append((round(time.monotonic() - t0, 1), status, body.strip()))
    time.sleep(0.5)
t = time.monotonic()
rc = bridge.stop(timeout=60)
stop_s = time.monotonic() - t
log = bridge.log_text()
dns.close()
h.log(f"{queries[0]} DNS queries swallowed; /healthz not 200 in {len(bad)} samples "
      f"{bad[:3]}; exit {rc} {stop_s:.1f} s after SIGTERM")
h.check(queries[0] > 0, "the bridge never asked the name server: nothing was tested")
h.check("Resolving timed out" in log,
        "no request failed as a lookup that timed out: nothing was tested")
h.check(not bad, f"/healthz was not 200 while lookups timed out: {bad[:5]}")
h.check(rc == 0, f"bridge exit code {rc}")
h.check(stop_s < 8, f"the bridge took {stop_s:.1f} s to exit after SIGTERM")
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
