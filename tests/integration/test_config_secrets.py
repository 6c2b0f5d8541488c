"""Configuration errors stop startup with exit 2 and a one-line message
naming the key (from -X, the environment, a file, librdkafka's own
properties, and what only making a client, parsing the URL as libcurl does
or binding the metrics address would refuse); --check-config accepts a good configuration; no client key
appears in --help, --check-config, error messages or the logs; an apps file
readable by others is warned about."""
import os
import signal
import subprocess
import time

import harness as h

SECRET = "sekrit-CLIENTKEY-0xC0FFEE"
BASE = ["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
        "-X", "dlq.topic=dlq", "-X", f"apps=app1:{SECRET}"]


def run(args, env=None):
    e = {"PATH": os.environ["PATH"]}
    e.update(env or {})
    p = subprocess.run([h.BRIDGE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, timeout=60)
    out = p.stdout.decode() + p.stderr.decode()
    h.check(SECRET not in out, f"the client key was printed by {args}: {out}")
    return p.returncode, out


def expect_error(args, key, env=None):
    rc, out = run(args, env)
    h.check(rc == 2, f"{args} {env}: exit {rc}, want 2: {out}")
    h.check(key in out, f"{args} {env}: the message does not name '{key}': {out}")
    h.check(out.strip().count("\n") == 0, f"{args}: message is not one line: {out}")


rc, out = run([*BASE, "--check-config"])
h.check(rc == 0 and "configuration OK" in out, f"--check-config on a good config: {rc} {out}")
# Credentials in api.url (a gateway's basic auth) are not printed back.
rc, out = run([*BASE, "-X", f"api.url=https://svc:{SECRET}@api.example.com/api?action=multi",
               "--check-config"])
h.check(rc == 0 and "API https://api.example.com/api?action=multi" in out,
        f"--check-config with credentials in api.url: {rc} {out}")
# An -X without '=' (a mistyped key=value) is not quoted back: it may hold a key.
expect_error([*BASE, "-X", f"app1:{SECRET}"], "-X needs key=value")
# librdkafka quotes a secret property it cannot parse (its error callback,
# once the clients start): the log says where, not what.
oauth = subprocess.Popen(
    [h.BRIDGE, *BASE, "-X", "kafka.security.protocol=SASL_PLAINTEXT",
     "-X", "kafka.sasl.mechanisms=OAUTHBEARER",
     "-X", "kafka.enable.sasl.oauthbearer.unsecure.jwt=true",
     "-X", f"kafka.sasl.oauthbearer.config=principal=x bogus={SECRET}"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
time.sleep(3)
oauth.send_signal(signal.SIGTERM)
out = oauth.communicate(timeout=60)[0].decode()
h.check("sasl.oauthbearer.config [redacted]" in out,
        f"librdkafka's parse error of sasl.oauthbearer.config is not logged: {out[-1500:]}")
h.check(SECRET not in out, f"librdkafka's message printed the secret: {out[-1500:]}")
rc, out = run(["--help"])
h.check(rc == 0 and "batch.max.users" in out and "kafka.bootstrap.servers" in out, "--help lists keys")
rc, out = run(["--version"])
h.check(rc == 0 and "leanbridge" in out, "--version")

expect_error([*BASE, "-X", "batch.max.user=5", "--check-config"], "batch.max.user")
expect_error([*BASE, "-X", "batch.max.users=51", "--check-config"], "batch.max.users")
expect_error([*BASE, "-X", "batch.max.actions=abc", "--check-config"], "batch.max.actions")
expect_error([*BASE, "-X", "kafka.no.such.property=1", "--check-config"], "kafka.no.such.property")
# What only the running bridge used to find (exit 1 after "configuration OK").
expect_error([*BASE, "-X", "api.url=https://exa mple.com/", "--check-config"], "api.url")
expect_error([*BASE, "-X", "api.ca.file=/nonexistent/ca.pem", "--check-config"], "api.ca.file")
expect_error([*BASE, "-X", "metrics.listen=myhost:9464", "--check-config"], "metrics.listen")
# an address of no interface here: a configuration error (2), not a failed start (1)
expect_error([*BASE, "-X", "metrics.listen=192.0.2.77:9464", "--check-config"], "metrics.listen")
expect_error([*BASE, "-X", "metrics.listen=192.0.2.77:9464"], "metrics.listen")
expect_error([*BASE, "-X", "kafka.consumer.session.timeout.ms=300001", "--check-config"],
             "session.timeout.ms")
expect_error([*BASE, "-X", "kafka.producer.max.in.flight=10", "--check-config"], "max.in.flight")
expect_error([*BASE, "-X", "kafka.producer.acks=maybe", "--check-config"], "kafka.producer.acks")
# a prefetch setting of the user's is the user's line: librdkafka names it
expect_error([*BASE, "-X", "kafka.consumer.queued.min.messages=abc", "--check-config"],
             "kafka.consumer.queued.min.messages")
expect_error([*BASE, "--check-config"], "batch.max.users", env={"LEANBRIDGE_BATCH_MAX_USERS": "0"})
expect_error([*BASE, "--check-config"], "LEANBRIDGE_NO_SUCH_KEY", env={"LEANBRIDGE_NO_SUCH_KEY": "1"})
expect_error(["-X", "input.topics=in", "-X", "dlq.topic=dlq", "-X", f"apps=app1:{SECRET}",
              "--check-config"], "kafka.bootstrap.servers")
expect_error([*BASE, "-X", f"apps=app1:{SECRET},app1:{SECRET}", "--check-config"], "apps")
expect_error([*BASE, "-X", f"apps=app1{SECRET}", "--check-config"], "apps")
expect_error([*BASE, "-X", "dlq.topic=in", "--check-config"], "dlq.topic")

wd = h.workdir()
conf = os.path.join(wd, "bad.conf")
with open(conf, "w") as f:
    f.write("# a comment\nbatch.linger.ms = 100\nbatch.max.wait.ms = 50\n")
expect_error(["-c", conf, *BASE, "--check-config"], "batch.max.wait.ms")
with open(conf, "w") as f:
    f.write("batch.linger.ms 100\n")
expect_error(["-c", conf, *BASE, "--check-config"], "bad.conf:1")
expect_error(["-c", os.path.join(wd, "missing.conf"), *BASE, "--check-config"], "missing.conf")

apps = os.path.join(wd, "apps.txt")
with open(apps, "w") as f:
    f.write(f"# app ids and keys\napp1:{SECRET}\napp2:{SECRET}2\n")
os.chmod(apps, 0o644)
rc, out = run(["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
               "-X", "dlq.topic=dlq", "-X", f"apps=@{apps}", "--check-config"])
h.check(rc == 0 and "readable by other" in out, f"world-readable apps file should warn: {out}")
os.chmod(apps, 0o600)
rc, out = run(["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
               "-X", "dlq.topic=dlq", "-X", f"apps=@{apps}", "--check-config"])
h.check(rc == 0 and "readable by other" not in out, f"a 0600 apps file should not warn: {out}")

# Turning TLS verification off is said loudly; the key still never shows,
# not even in the process's arguments (ps, /proc/PID/cmdline).
PASSWORD = "sasl-PASSWORD-0xBADC0DE"
p = h.spawn([h.BRIDGE, *BASE, "-X", "api.tls.insecure=true", "-X", "log.level=debug",
             "-X", f"kafka.sasl.password={PASSWORD}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
time.sleep(2)
with open(f"/proc/{p.pid}/cmdline", "rb") as f:
    cmdline = f.read().decode(errors="replace").split("\0")
h.check(not any(SECRET in a or PASSWORD in a for a in cmdline),
        f"a secret is visible in the process's arguments: {cmdline}")
h.check("apps=" + "*" * len(f"app1:{SECRET}") in cmdline
        and "kafka.sasl.password=" + "*" * len(PASSWORD) in cmdline,
        f"secret -X values should read as stars: {cmdline}")
h.stop_process(p)
out = p.stdout.read().decode()
h.check("NOT verified" in out, f"api.tls.insecure must be logged loudly: {out[-2000:]}")
h.check(SECRET not in out and PASSWORD not in out, "a secret appeared in a debug log")
h.check("in clear" not in out, f"https:// is not sent in clear: {out[-2000:]}")

# A plain http:// endpoint sends the client keys in clear: said at startup.
p = h.spawn([h.BRIDGE, *BASE, "-X", "api.url=http://127.0.0.1:9/api?action=multi"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
time.sleep(2)
h.stop_process(p)
out = p.stdout.read().decode()
h.check("in clear" in out, f"api.url=http:// must be warned about: {out[-2000:]}")
h.check(SECRET not in out, "a secret appeared in the log")
print("1 passed, 0 failed")
