"""The bridge speaks HTTP/1.1 to the API, even where TLS offers HTTP/2.
Its reasoning about which failed exchanges may still run at the API (and
so hold their users for api.timeout.hold.ms) and its refusal of libcurl's
silent resends are HTTP/1.1's: over HTTP/2 a stream the server refused
(REFUSED_STREAM, or past a GOAWAY), which the server never processed, made
libcurl resend, the refused rewind failed the exchange as "may still be
running", and its users were held 30 s, the attempt counted toward
retry.max.attempts and /readyz said "API unreachable".

A TLS front on 127.0.0.1 (a self-signed certificate made with openssl,
given as api.ca.file) offers ALPN h2 and http/1.1 and records what each
connection chose; on http/1.1 it relays the bytes to the sandbox, on h2 it
closes the connection. Passes when every connection chose http/1.1 and
every event was delivered. (The binary before: libcurl chose h2.)"""
import os
import socket
import ssl
import subprocess
import threading

import harness as h

TOPIC, DLQ = "events", "events.dlq"


def make_cert(wd):
    cert, key = os.path.join(wd, "api.crt"), os.path.join(wd, "api.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class TlsFront:
    """TLS on 127.0.0.1 offering h2 and http/1.1; relays http/1.1
    connections to backend_port, closes the others."""

    def __init__(self, cert, key, backend_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.backend = backend_port
        self.chosen = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.relay, args=(conn,), daemon=True).start()

    def relay(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        proto = tls.selected_alpn_protocol()
        self.chosen.append(proto)
        if proto not in (None, "http/1.1"):
            tls.close()
            return
        back = socket.create_connection(("127.0.0.1", self.backend))
        threading.Thread(target=pipe, args=(back, tls), daemon=True).start()
        pipe(tls, back)

    def stop(self):
        self.sock.close()


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


wd = h.workdir()
cert, key = make_cert(wd)
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
front = TlsFront(cert, key, sandbox.port)
lines, events = h.make_events(60, users=10, seed=11)
h.produce(kafka.bootstrap, TOPIC, lines)
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ, api_ca_file=cert)
settings["api.url"] = f"https://127.0.0.1:{front.port}/api?action=multi"
bridge = h.Bridge(wd, settings)
h.wait_for(lambda: front.chosen, 60, "a TLS connection to the API")
h.check(set(front.chosen) <= {"http/1.1"},
        f"the bridge chose {sorted(set(map(str, front.chosen)))} over TLS, not http/1.1")
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 120,
           "committed offsets at the end of every partition")
rc = bridge.stop()
h.check(rc == 0, f"bridge exit code {rc}")
h.check(set(front.chosen) == {"http/1.1"}, f"ALPN choices {front.chosen}")
counts = h.check_invariants(events, sandbox, h.read_topic(kafka.bootstrap, DLQ),
                            expect_dead=[])
h.log(f"{len(front.chosen)} TLS connection(s), all http/1.1; {counts}")
front.stop()
sandbox.stop()
kafka.stop()
print("1 passed, 0 failed")
