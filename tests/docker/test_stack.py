#!/usr/bin/env python3
"""The docker tier: the compose stack of docker/docker-compose.yml, run as a
user runs it (Debian's dockerd and docker-compose 1.29, no docker/.env, no
hand step), on images made here when nothing can be pulled
(tests/docker/images.py).

Owns the stack's end-to-end checks, in order:
  1. the images (made when missing);
  2. `docker-compose build` from the current tree (always rebuilt); the image
     runs as non-root, has its HEALTHCHECK and no compiler; its size; the
     exit bound its `leanbridge --check-config` prints under the compose
     environment is below the bridge's stop_grace_period;
  3. `up -d`: topics created (kafka-init exits 0), the bridge healthy/ready,
     its startup log saying it found the 1 GiB cgroup limit (mem_limit) and
     sized pending.max.bytes from it;
  4. events produced with kcat through the host port are all delivered to the
     sandbox and committed; a poison event is in the DLQ (read with kcat);
  5. `up -d --scale leanbridge=3`: three group members own 4 of the 12
     partitions each; new events delivered and everything committed;
  6. the monitoring profile's Prometheus scrapes the three replicas, loads
     the alert rules, and every dashboard expression returns data;
  7. `stop` of the bridges: every replica exits 0 within the grace period;
  8. the same with the sandbox answering slower than api.timeout.ms and
     handover.flush=true (an override file), so that the SIGTERM sends what
     the replicas hold: the bridges give up, wait for the requests still
     at the API, and still exit 0 inside the grace period;
  9. `down -v`.
Ends with "N passed, N failed"; exit 1 on any failure. Without an engine
(not root, no Debian packages) it exits 77 (skipped), except under CI=true or
LEANBRIDGE_REQUIRE_DOCKER=1, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "docker"))
import images  # noqa: E402
from check_docker import duration_s  # noqa: E402

ROOT = images.ROOT
COMPOSE_FILE = images.COMPOSE_FILE
PROJECT = "lbtier"
BROKER = "127.0.0.1:29092"
TOPIC, DLQ, GROUP = "leanbridge.events", "leanbridge.dlq", "leanbridge"
PROMETHEUS = "http://127.0.0.1:9090"
POISON = b'{"appId": "app_demo", "userId": "poison", "action": '  # cut JSON
SLOW_MS = 40000  # above api.timeout.ms (30 s): every request times out

passed = failed = 0
t_start = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True)


def check(ok: bool, what: str, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL - {what}{': ' + detail if detail else ''}", flush=True)
    return ok


def required() -> bool:
    return os.environ.get("CI") == "true" or \
        os.environ.get("LEANBRIDGE_REQUIRE_DOCKER", "") not in ("", "0")


class Stack:
    """docker-compose on the repository's compose file, as a fresh clone has
    it: an empty --env-file stands in for the absent docker/.env, and no
    variable of the runner's environment reaches the interpolation."""

    def __init__(self, work: str):
        self.env_file = os.path.join(work, "empty.env")
        open(self.env_file, "w").close()
        self.files = ["-f", COMPOSE_FILE]
        self.env = {k: v for k, v in os.environ.items()
                    if not re.match(r"(LEANBRIDGE|KAFKA|BRIDGE|PROMETHEUS|GRAFANA|COMPOSE)_", k)}
        self.env["COMPOSE_PROJECT_NAME"] = PROJECT

    def run(self, *args, timeout=600, check_rc=True):
        cmd = ["docker-compose", *self.files, "--env-file", self.env_file, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=self.env, cwd=ROOT)
        if check_rc and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])}: exit {p.returncode}: "
                               f"{(p.stdout + p.stderr)[-2000:]}")
        return p

    def config(self, *extra):
        import yaml
        return yaml.safe_load(self.run(*extra, "config").stdout)

    def ids(self, service: str) -> list:
        return self.run("ps", "-q", service).stdout.split()

    def exec_(self, cid: str, *cmd, timeout=120):
        return images.docker("exec", cid, *cmd, timeout=timeout, check=False)

    def diagnostics(self) -> None:
        p = self.run("ps", check_rc=False)
        print(p.stdout + p.stderr)
        p = self.run("logs", "--no-color", "--tail", "60", check_rc=False, timeout=120)
        print(p.stdout[-20000:] + p.stderr[-2000:])


def wait_for(fn, timeout: float, interval: float = 2.0):
    """fn's first truthy value within timeout seconds, else the last one."""
    deadline = time.monotonic() + timeout
    v = None
    while True:
        try:
            v = fn()
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired):
            v = None  # not up yet: ask again
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def inspect(cid: str) -> dict:
    return json.loads(images.docker("inspect", cid).stdout)[0]


def metrics(stack: Stack, cid: str) -> dict:
    """{sample name with labels: value} of a bridge's /metrics."""
    p = stack.exec_(cid, "curl", "-fsS", "http://127.0.0.1:9100/metrics", timeout=30)
    out = {}
    for line in p.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_sum(m: dict, name: str) -> float:
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def group_describe(stack: Stack) -> list:
    """[(partition, committed or None, log end, consumer id)] of the
    leanbridge group on leanbridge.events, from Kafka's own tool."""
    kafka = stack.ids("kafka")[0]
    p = stack.exec_(kafka, "/opt/kafka/bin/kafka-consumer-groups.sh", "--bootstrap-server",
                    "localhost:9092", "--describe", "--group", GROUP, timeout=120)
    rows = []
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 7 and f[0] == GROUP and f[1] == TOPIC:
            committed = None if f[3] == "-" else int(f[3])
            rows.append((int(f[2]), committed, int(f[4]), f[6]))
    return sorted(rows)


def all_committed(stack: Stack, produced: int):
    rows = group_describe(stack)
    ok = len(rows) == 12 and all(c == end for _, c, end, _ in rows) and \
        sum(end for _, _, end, _ in rows) == produced
    return rows if ok else None


def sandbox_stats(stack: Stack) -> dict:
    p = stack.exec_(stack.ids("sandbox")[0], "curl", "-fsS", "http://127.0.0.1:8080/stats",
                    timeout=30)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def produce(records: list) -> None:
    """records: [(key, value bytes)] to leanbridge.events through the host port."""
    data = b"".join(k.encode() + b"\x1f" + v + b"\x1e" for k, v in records)
    p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", TOPIC, "-K", "\\x1f", "-D", "\\x1e"],
                       input=data, capture_output=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"kcat produce: {p.stderr.decode()[-1000:]}")


def events(n: int, first: int, users: int = 60) -> list:
    return [(f"user-{i % users}", json.dumps(
        {"appId": "app_demo", "userId": f"user-{i % users}", "action": "track",
         "event": "tier", "seq": i}).encode()) for i in range(first, first + n)]


def read_dlq() -> list:
    p = subprocess.run(["kcat", "-C", "-b", BROKER, "-t", DLQ, "-o", "beginning", "-e",
                        "-q", "-f", "%h\x1f%s\x1e"], capture_output=True, timeout=60)
    out = []
    for rec in p.stdout.split(b"\x1e"):
        if rec.strip():
            h, _, v = rec.partition(b"\x1f")
            hdrs = dict(kv.split("=", 1) for kv in h.decode().split(",") if "=" in kv)
            out.append((hdrs, v))
    return out


def prom(path: str, **params):
    url = f"{PROMETHEUS}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]


def dashboard_queries() -> list:
    with open(os.path.join(ROOT, "docker", "grafana", "leanbridge.json")) as f:
        d = json.load(f)

    def panels(p):
        for x in p.get("panels", []):
            yield x
            yield from panels(x)
    exprs = [t["expr"] for p in panels(d) for t in p.get("targets", []) if t.get("expr")]
    # Grafana's variables, as the dashboard's defaults resolve them: every
    # instance, and $__rate_interval = 4 x the 15 s scrape interval.
    return [e.replace("$instance", ".*").replace("$__rate_interval", "1m") for e in exprs]


def stop_and_check(stack: Stack, grace: float, bound: float, what: str, *services) -> float:
    ids = stack.ids("leanbridge")
    t0 = time.monotonic()
    stack.run("stop", *services, timeout=grace * 2 + 120)
    took = time.monotonic() - t0
    codes = {cid[:12]: inspect(cid)["State"]["ExitCode"] for cid in ids}
    check(len(ids) == 3 and all(c == 0 for c in codes.values()),
          f"{what}: all {len(ids)} replicas exit 0", str(codes))
    check(took < bound < grace, f"{what}: stopped in {took:.0f} s, inside the exit bound "
          f"({bound:.0f} s) and the grace period ({grace:.0f} s)")
    return took


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lb-docker-tier-") as work:
        engine = images.Engine(work)
        try:
            engine.start()
        except images.Unavailable as e:
            if required():
                print(f"FAIL - no Docker engine, and CI=true / LEANBRIDGE_REQUIRE_DOCKER=1 "
                      f"requires one: {e}")
                print("0 passed, 1 failed")
                return 1
            print(f"SKIPPED: no Docker engine here: {e}")
            return 77
        stack = Stack(work)
        try:
            run_tier(stack, work)
        except Exception as e:  # a step broke: say where, show the stack
            check(False, "the tier ran to its end", f"{type(e).__name__}: {e}")
        finally:
            if failed:
                stack.diagnostics()
            stack.run("--profile", "monitoring", "down", "-v", "--remove-orphans",
                      check_rc=False, timeout=300)
            engine.stop()
    log(f"tier took {time.monotonic() - t_start:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def run_tier(stack: Stack, work: str) -> None:
    # A stack of an earlier, interrupted run goes first.
    stack.run("--profile", "monitoring", "down", "-v", "--remove-orphans",
              check_rc=False, timeout=300)
    t = time.monotonic()
    images.prepare()
    log(f"images ready in {time.monotonic() - t:.0f} s")

    conf = stack.config()
    bridge = conf["services"]["leanbridge"]
    grace = duration_s(bridge.get("stop_grace_period", "10s"))

    # 2. The image, built from this tree, and its exit bound against the
    # grace period of the rendered file.
    t = time.monotonic()
    stack.run("build", timeout=1800)
    check(True, f"docker-compose build ({time.monotonic() - t:.0f} s)")
    image = bridge["image"]
    info = json.loads(images.docker("image", "inspect", image).stdout)[0]
    log(f"image {image}: {info['Size'] / 1e6:.0f} MB")
    cfg = info["Config"]
    check(cfg.get("User", "") not in ("", "root", "0") and
          not cfg["User"].startswith("0:"), f"{image} runs as non-root", cfg.get("User"))
    check("/healthz" in " ".join((cfg.get("Healthcheck") or {}).get("Test", [])),
          f"{image} has the /healthz HEALTHCHECK")
    p = images.docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
                      "command -v cc gcc cmake make || echo none", check=False)
    check(p.stdout.strip() == "none", f"{image} holds no compiler or build tool", p.stdout)
    env = [f"{k}={v}" for k, v in (bridge.get("environment") or {}).items()]
    p = images.docker("run", "--rm", *sum((["-e", e] for e in env), []), image,
                      "--check-config", check=False)
    m = re.search(r"exit bound: (\d+) ms", p.stdout)
    bound = int(m.group(1)) / 1000 if m else grace
    check(p.returncode == 0 and m is not None,
          "the image's leanbridge --check-config accepts the compose environment",
          p.stdout + p.stderr)
    check(bound < grace, f"exit bound {bound:.0f} s < stop_grace_period {grace:.0f} s")

    # 3. up -d
    t = time.monotonic()
    stack.run("up", "-d", timeout=600)
    log(f"up -d returned in {time.monotonic() - t:.0f} s")
    init = stack.run("ps", "-q", "-a", "kafka-init").stdout.split()
    check(bool(init) and inspect(init[0])["State"]["ExitCode"] == 0,
          "kafka-init created the topics and exited 0")
    lb = stack.ids("leanbridge")
    healthy = wait_for(lambda: inspect(lb[0])["State"].get("Health", {}).get("Status")
                       == "healthy", 90)
    check(bool(healthy), "the bridge's HEALTHCHECK reports healthy")
    # The compose file's mem_limit, found by the bridge in its cgroup, sizes
    # its pending bound (the startup log line of lb_config_describe_memory).
    started = stack.run("logs", "--no-color", "leanbridge").stdout
    m = re.search(r"memory limit (\d+) bytes \(cgroup v[12] [^)]*\); "
                  r"consumer prefetch (\d+) bytes \([^)]*\); "
                  r"pending\.max\.bytes (\d+) \(auto: 40% less the consumer's "
                  r"prefetch", started)
    check(m is not None and int(m.group(1)) == 1024 ** 3 and
          int(m.group(3)) == 1024 ** 3 * 40 // 100 - int(m.group(2)),
          "the bridge found the 1 GiB cgroup limit (mem_limit) and sized "
          "pending.max.bytes from it", m.group(0) if m else started[-1500:])

    # 4. Events through the host port; a poison event to the DLQ.
    first = events(300, 0)
    produce(first + [("poison", POISON)])
    rows = wait_for(lambda: all_committed(stack, 301), 120, interval=5)
    check(bool(rows), "301 events committed on all 12 partitions (kafka-consumer-groups.sh)",
          str(group_describe(stack)))
    ready = stack.exec_(lb[0], "curl", "-fsS", "http://127.0.0.1:9100/readyz")
    check(ready.returncode == 0 and ready.stdout.strip() == "ready",
          "the bridge is ready (/readyz: in the group, the API answered)", ready.stdout)
    stats = sandbox_stats(stack)
    check(stats.get("actions_accepted") == 300,
          "the sandbox accepted the 300 events' actions", str(stats))
    dead = read_dlq()
    check(len(dead) == 1 and dead[0][1] == POISON
          and dead[0][0].get("leanbridge.error.stage") == "parse",
          "the poison event is in leanbridge.dlq, value unchanged, stage parse (kcat)",
          str(dead)[:500])

    # 5. Three replicas share the 12 partitions.
    stack.run("up", "-d", "--scale", "leanbridge=3", timeout=600)
    lb = stack.ids("leanbridge")

    def spread():
        rows = group_describe(stack)
        owners = {}
        for _, _, _, consumer in rows:
            owners[consumer] = owners.get(consumer, 0) + 1
        per = [metric_sum(metrics(stack, c), "leanbridge_partitions_assigned") for c in lb]
        ok = len(rows) == 12 and "-" not in owners and sorted(owners.values()) == [4, 4, 4] \
            and per == [4, 4, 4]
        return (owners, per) if ok else None
    got = wait_for(spread, 120, interval=5)
    check(len(lb) == 3 and bool(got),
          "3 replicas, 3 group members owning 4 partitions each "
          "(kafka-consumer-groups.sh and each replica's /metrics)", str(got))
    produce(events(600, 300))
    rows = wait_for(lambda: all_committed(stack, 901), 150, interval=5)
    check(bool(rows), "after scaling, all 901 events committed", str(group_describe(stack)))
    stats = sandbox_stats(stack)
    check(stats.get("actions_accepted", 0) >= 900 and stats.get("user_overlap", 1) == 0,
          "the sandbox accepted the 900 actions, no user in two requests at once",
          str(stats))
    delivered = [metric_sum(metrics(stack, c), "leanbridge_actions_delivered_total")
                 for c in lb]
    check(sum(delivered) >= 600 and all(d > 0 for d in delivered),
          "each replica delivered a share", str(delivered))

    # 6. Prometheus of the monitoring profile (Grafana cannot be had here).
    stack.run("--profile", "monitoring", "up", "-d", "--scale", "leanbridge=3",
              "prometheus", timeout=600)

    def targets():
        act = prom("/api/v1/targets")["activeTargets"]
        up = [t for t in act if t["labels"].get("job") == "leanbridge"
              and t["health"] == "up"]
        return up if len(up) == 3 else None
    up = wait_for(targets, 120, interval=5)
    check(bool(up), "Prometheus scrapes the 3 replicas (/api/v1/targets)",
          str(wait_for(lambda: prom("/api/v1/targets"), 5))[:800])
    import yaml
    with open(os.path.join(ROOT, "docker", "prometheus", "alerts.yml")) as f:
        want = sorted(r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"])
    loaded = wait_for(lambda: sorted(r["name"] for g in prom("/api/v1/rules")["groups"]
                                     for r in g["rules"]), 30)
    check(loaded == want, f"Prometheus loaded the {len(want)} alert rules (/api/v1/rules)",
          str(loaded))
    queries = dashboard_queries()

    def empty():
        return [q for q in queries if not prom("/api/v1/query", query=q)["result"]]
    wait_for(lambda: not empty(), 120, interval=10)  # two scrapes per rate window
    missing = empty()
    check(not missing, f"all {len(queries)} dashboard expressions return data in Prometheus",
          str(missing))
    values = prom("/api/v1/label/instance/values", **{"match[]": "leanbridge_build_info"})
    check(len(values) == 3, "the dashboard's instance variable lists the 3 replicas",
          str(values))

    # 7. stop: every replica exits 0 inside the grace period.
    stop_and_check(stack, grace, bound, "stop", "leanbridge")

    # 8. The same while the sandbox answers after api.timeout.ms: requests
    # are still at the API when SIGTERM comes. handover.flush=true makes
    # the SIGTERM send what the replicas hold (by default they leave it to
    # the next owner and stop at once): the longest stop there is.
    override = os.path.join(work, "slow-sandbox.yml")
    sandbox_cmd = conf["services"]["sandbox"]["command"] + ["--delay-ms", str(SLOW_MS)]
    with open(override, "w") as f:
        json.dump({"version": conf.get("version", "2.4"),
                   "services": {"sandbox": {"command": sandbox_cmd},
                                "leanbridge": {"environment": {
                                    "LEANBRIDGE_HANDOVER_FLUSH": "true"}}}}, f)
    stack.files += ["-f", override]
    stack.run("up", "-d", "--scale", "leanbridge=3", timeout=600)
    lb = stack.ids("leanbridge")
    wait_for(lambda: spread(), 120, interval=5)
    produce(events(300, 900, users=300))
    # SIGTERM (handover.flush) sends what is held: wait until all of it is
    # consumed.
    consumed = wait_for(lambda: sum(metric_sum(metrics(stack, c), "leanbridge_pending_actions")
                                    for c in lb) >= 300, 60)
    check(bool(consumed), "slow API: the 300 new events are held by the replicas")
    took = stop_and_check(stack, grace, bound,
                          f"stop with the API answering after {SLOW_MS // 1000} s")
    logs = stack.run("logs", "--no-color", "leanbridge").stdout
    check("not finished within shutdown.timeout.ms" in logs and
          "stopped (exit 0)" in logs,
          "slow API: the replicas gave up their requests, waited for them, exited 0 "
          f"({took:.0f} s)")
    stack.files = stack.files[:2]


if __name__ == "__main__":
    sys.exit(main())
