"""The admin server (/metrics, /healthz, /readyz) stays usable, and the log
quiet, whatever one client does.

1. Slow clients: 70 connections from 127.0.0.2 that send a header line every
   2 s (never idle for the server's timeout, never done). Before, they took
   every one of the server's 64 connections and a probe from 127.0.0.1
   waited in the kernel's backlog until they left: an orchestrator would
   have restarted a healthy bridge. Now one address holds at most a few
   connections; passes when every probe from 127.0.0.1 meanwhile answers
   200 within 2 s.
2. A flood of broken requests: 600 connections from 127.0.0.3 that send
   half a request line and close. Before, libmicrohttpd's warning for each
   reached the log (one line a connection, ~1,000 lines/s for any client);
   now at most one a period with a count of those held back; passes when
   the run added at most 5 such lines."""
import socket
import threading
import time

import harness as h

TOPIC, DLQ = "events", "events.dlq"

wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
mport = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen=f"127.0.0.1:{mport}"))
h.wait_for(lambda: h.http_get(mport, "/healthz")[0] == 200, 30, "/healthz answers")


def connect_from(source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", mport))
    return s


def probe():
    """(status or the error, seconds) of one /healthz from 127.0.0.1."""
    t = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", mport), timeout=2)
        s.settimeout(2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(200)
        s.close()
        status = int(data.split()[1]) if data.startswith(b"HTTP/") else data[:40]
    except OSError as e:
        status = type(e).__name__
    return status, round(time.monotonic() - t, 2)


# 1. Slow clients.
stop = threading.Event()
slow = []
for _ in range(70):
    try:
        c = connect_from("127.0.0.2")
        c.sendall(b"GET /metrics HTTP/1.1\r\n")
        slow.append(c)
    except OSError:
        pass


def trickle():
    n = 0
    while not stop.wait(2):
        for c in slow:
            try:
                c.sendall(b"X-Slow-%d: 1\r\n" % n)
            except OSError:
                pass
        n += 1


threading.Thread(target=trickle, daemon=True).start()
time.sleep(1)
probes = []
t0 = time.monotonic()
while time.monotonic() - t0 < 15:
    probes.append(probe())
    time.sleep(1)
stop.set()
for c in slow:
    c.close()
late = [p for p in probes if p[0] != 200 or p[1] > 2]
h.log(f"{len(slow)} slow connections opened from 127.0.0.2; probes from 127.0.0.1: "
      f"{probes}")
h.check(not late, f"/healthz did not answer 200 within 2 s while slow clients held "
        f"connections: {late}")

# 2. A flood of broken requests.
before = bridge.log_text().count("libmicrohttpd")
sent = 0
for _ in range(600):
    try:
        c = connect_from("127.0.0.3")
        c.sendall(b"GET /metr")
        c.close()
        sent += 1
    except OSError:
        pass
time.sleep(2)
added = bridge.log_text().count("libmicrohttpd") - before
h.log(f"{sent} broken requests sent; {added} libmicrohttpd log line(s) added")
h.check(sent >= 500, f"only {sent} broken requests could be sent: nothing was tested")
h.check(added <= 5, f"{added} log lines for {sent} broken requests: the log can be flooded")
h.check(probe()[0] == 200, "/healthz after the flood")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
