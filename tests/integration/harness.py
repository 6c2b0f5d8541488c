"""harness.py: the integration tier's toolkit (Python 3 stdlib only).

Starts the real processes a test needs (librdkafka's mock cluster via
lb-kafkatool, the sandbox API, one or more leanbridge instances), produces
events, reads committed offsets and the dead-letter topic, and checks the
invariants every scenario must hold:
  delivered + dead-lettered = produced (tombstones aside), per-user order,
  no request over a limit, no concurrent request for a user, and committed
  offsets at the end of every partition.
Every process runs in its own process group and is killed at exit.
"""
import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import re
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("LB_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
KAFKATOOL = os.path.join(BUILD, "lb-kafkatool")
SANDBOX = os.path.join(BUILD, "leanbridge-sandbox")
BRIDGE = os.path.join(BUILD, "leanbridge")

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


atexit.register(_cleanup)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def spawn(args, stdout=None, stderr=None, stdin=None, env=None):
    p = subprocess.Popen(args, stdout=stdout, stderr=stderr, stdin=stdin,
                         env=env, start_new_session=True)
    _procs.append(p)
    return p


def wait_for(fn, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    fail(f"timed out after {timeout}s waiting for {what}")


def workdir():
    d = tempfile.mkdtemp(prefix="lbtest-")
    return d


class MockKafka:
    """librdkafka's mock cluster in an lb-kafkatool process. Fault commands
    go to its stdin (see kafkatool.c)."""

    def __init__(self, topics, brokers=1):
        args = [KAFKATOOL, "mock", "--brokers", str(brokers)]
        for name, parts in topics.items():
            args += ["--topic", f"{name}:{parts}"]
        self.proc = spawn(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                          stderr=None)
        self.bootstrap = self.proc.stdout.readline().decode().strip()
        check(self.bootstrap, "mock cluster did not start")

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def stop(self):
        stop_process(self.proc)


def stop_process(p, sig=signal.SIGTERM, timeout=30):
    if p.poll() is not None:
        return p.returncode
    os.killpg(p.pid, sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        fail(f"process {p.args[0]} did not stop within {timeout}s")


class Sandbox:
    """The sandbox API on an ephemeral port. Its files are named after
    `name` in wd; the per-action log (--log) costs sandbox CPU, so a run
    that does not read it may turn it off."""

    def __init__(self, apps, wd, extra=(), name="sandbox", action_log=True, req_log=True):
        self.log_path = os.path.join(wd, f"{name}-actions.jsonl") if action_log else None
        self.req_path = os.path.join(wd, f"{name}-requests.jsonl") if req_log else None
        port_file = os.path.join(wd, f"{name}.port")
        self.down_file = os.path.join(wd, f"{name}-api-down")
        for stale in (self.log_path, self.req_path, port_file):
            if stale and os.path.exists(stale):
                os.unlink(stale)
        args = [SANDBOX, "--port", "0", "--port-file", port_file,
                "--apps", ",".join(f"{a}:{k}" for a, k in apps.items()),
                "--down-file", self.down_file]
        if self.log_path:
            args += ["--log", self.log_path]
        if self.req_path:
            args += ["--req-log", self.req_path]
        self.proc = spawn(args + list(extra), stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(port_file), 20, "sandbox port file")
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = f"http://127.0.0.1:{self.port}/api?action=multi"

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())

    def requests(self):
        """The --req-log lines: one dict per request."""
        with open(self.req_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def actions(self):
        """The --log lines, one dict per accepted action, lazily."""
        with open(self.log_path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def accepted(self):
        out = []
        if os.path.exists(self.log_path):
            with open(self.log_path) as f:
                for line in f:
                    out.append(json.loads(line))
        return out

    def accepted_count(self):
        """Accepted actions so far (cheap: counts lines)."""
        if not os.path.exists(self.log_path):
            return 0
        with open(self.log_path, "rb") as f:
            return f.read().count(b"\n")

    def set_down(self, down):
        if down:
            open(self.down_file, "w").close()
        elif os.path.exists(self.down_file):
            os.unlink(self.down_file)

    def stop(self):
        stop_process(self.proc)


APPS = {"app_alpha": "key-alpha-SECRET1", "app_beta": "key-beta-SECRET2",
        "app_gamma": "key-gamma-SECRET3"}


def key_generation(gen):
    """APPS with every client key of rotation number gen."""
    return {a: f"{k}-gen{gen}" for a, k in APPS.items()}


def write_apps(path, apps):
    """An apps file (APPID:KEY lines, mode 0600) put in place at once, as a
    Secret volume's update is: written aside, then renamed over path."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# client keys\n" + "".join(f"{a}:{k}\n" for a, k in apps.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)

ACTIONS = ["start", "track", "setUserAttributes", "track", "track", "stop"]


def make_events(n, users=300, apps=APPS, seed=1, tombstones=0, start_seq=None):
    """n events over `users` users, each user in one app, each user's events
    numbered in order (params.seq), each with a unique eid. Keyed by user.
    Returns (lines, events) with events a list of dicts (None = tombstone)."""
    rnd = random.Random(seed)
    app_names = sorted(apps)
    seq = start_seq if start_seq is not None else {}
    lines, events = [], []
    for i in range(n):
        u = rnd.randrange(users)
        app = app_names[u % len(app_names)]
        uid = f"user-{u}"
        s = seq.get(uid, 0)
        seq[uid] = s + 1
        action = ACTIONS[s % len(ACTIONS)]
        ev = {"appId": app, "userId": uid, "action": action,
              "eid": f"e{seed}-{i}", "params": {"seq": s}}
        if action == "track":
            ev["event"] = "Level Complete"
        if i % 7 == 0:
            ev["time"] = 1700000000 + i
        events.append(ev)
        lines.append(f"{uid}\t{json.dumps(ev, separators=(',', ':'))}")
    for t in range(tombstones):
        lines.append(f"tomb-{t}\t\\N")
        events.append(None)
    return lines, events


class SteadyProducer:
    """Produces `rate` events a second (one batch a second, make_events over
    `users` users, each user's events in order) to topic from a thread until
    stop(); .events holds what was produced."""

    def __init__(self, bootstrap, topic, rate, users=200, seed=1000):
        self.events, self._seq, self._stop = [], {}, threading.Event()

        def run():
            n = 0
            while not self._stop.is_set():
                lines, evs = make_events(rate, users=users, seed=seed + n,
                                         start_seq=self._seq)
                produce(bootstrap, topic, lines)
                self.events.extend(evs)
                n += 1
                self._stop.wait(1)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()


def produce(bootstrap, topic, lines, props=(), transactional_id=None):
    """lines: "key<TAB>value" (str or bytes); value \\N is a tombstone.
    props: producer settings ("compression.codec=gzip": one batch).
    transactional_id: a transactional producer, lines \\BEGIN, \\COMMIT
    and \\ABORT beginning, committing and aborting transactions."""
    data = b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines)
    args = [KAFKATOOL, "produce", "-b", bootstrap, "-t", topic]
    if transactional_id:
        args += ["-T", transactional_id]
    for prop in props:
        args += ["-X", prop]
    p = subprocess.run(args, input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    check(p.returncode == 0, f"produce {list(props)} failed: {p.stderr.decode()[-2000:]}")


def mock_with_dlq_apart(topic, partitions, dlq):
    """A mock cluster of 3 brokers where the DLQ topic's one partition is led
    by broker 3 alone (`broker-down 3` takes only it down) and topic's
    partitions by brokers 1 and 2, the group's coordinator by broker 1."""
    kafka = MockKafka({topic: partitions, dlq: 1}, brokers=3)
    for p in range(partitions):
        kafka.command(f"leader {topic} {p} {1 + p % 2}")
    kafka.command(f"leader {dlq} 0 3")
    kafka.command("coordinator lbtest 1")
    time.sleep(0.5)
    return kafka


def rejected_events(n, users, seed):
    """make_events(n, users, seed) with every 10th event a track "Rejected"
    (the sandbox's --fail-event refuses it): (lines, events, the rejected
    events' eids)."""
    _, events = make_events(n, users=users, seed=seed)
    rejected = set()
    for i in range(0, n, 10):
        events[i].update(action="track", event="Rejected")
        rejected.add(events[i]["eid"])
    lines = [f"{e['userId']}\t" + json.dumps(e, separators=(",", ":")) for e in events]
    return lines, events, rejected


def committed(bootstrap, group, topic):
    p = subprocess.run([KAFKATOOL, "committed", "-b", bootstrap, "-t", topic, "-g", group],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    check(p.returncode == 0, f"committed failed: {p.stderr.decode()[-2000:]}")
    rows = []
    for line in p.stdout.decode().split("\n"):
        if line.strip():
            part, off, high = map(int, line.split())
            rows.append((part, off, high))
    return rows


def all_committed(bootstrap, group, topic):
    rows = committed(bootstrap, group, topic)
    return rows and all(off == high for _, off, high in rows)


def read_topic(bootstrap, topic):
    p = subprocess.run([KAFKATOOL, "consume", "-p", "-b", bootstrap, "-t", topic],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    check(p.returncode == 0, f"consume failed: {p.stderr.decode()[-2000:]}")
    text = p.stdout.decode("utf-8", errors="surrogateescape")
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def clean_env():
    """An environment from scratch for the binaries under test: PATH and the
    sanitizers' options, so the runner's LEANBRIDGE_* variables do not leak."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path; (0, "") when nothing
    answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def metric(port, series):
    """The value of one series (name with its labels) on a bridge's /metrics,
    or None."""
    m = re.search(rf"^{re.escape(series)} (\S+)$", http_get(port, "/metrics")[1], re.M)
    return float(m.group(1)) if m else None


def kcat_produce(bootstrap, topic, records, headers=(), partition=None):
    """records: [(key bytes, value bytes)], any bytes but 0x1e and 0x1f (the
    delimiters), so values may hold tabs and newlines. headers: [(name,
    value)] set on every record."""
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\\x1f", "-D", "\\x1e"]
    if partition is not None:
        args += ["-p", str(partition)]
    for name, value in headers:
        args += ["-H", f"{name}={value}"]
    data = b"".join(k + b"\x1f" + v + b"\x1e" for k, v in records)
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    check(p.returncode == 0, f"kcat produce: {p.stderr.decode()[-1000:]}")


def replay(bootstrap, dlq, group, *opts, xs=(), wait=True):
    """`leanbridge replay OPTS` on dlq with kafka.group.id=group (its replay
    group is GROUP.replay) and more -X settings in xs. wait=False returns the
    running process (stdout and stderr piped); else its exit code, stdout
    and stderr, logged, after checking that no client key was printed."""
    args = [BRIDGE, "replay", "-X", f"kafka.bootstrap.servers={bootstrap}",
            "-X", f"dlq.topic={dlq}", "-X", f"kafka.group.id={group}", *xs, *opts]
    p = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    if not wait:
        return p
    out, err = p.communicate(timeout=300)
    out, err = out.decode(), err.decode()
    # its first lines say why it stopped; its last ones, what came after
    shown = err if len(err) <= 1600 else f"{err[:800]}\n[...]\n{err[-800:]}"
    log(f"replay {' '.join(opts)} -> exit {p.returncode}\n{out}{shown}")
    check("SECRET" not in out + err, "a client key in replay's output")
    return p.returncode, out, err


class Bridge:
    """One leanbridge process, optionally under a wrapper command (valgrind).
    Its environment is built from scratch so the test runner's LEANBRIDGE_*
    variables do not leak into it."""
    n = 0

    def __init__(self, wd, settings, name=None, config_file=None, wrapper=()):
        Bridge.n += 1
        self.config_file = config_file
        self.wrapper = list(wrapper)
        self.name = name or f"bridge{Bridge.n}"
        self.log_path = os.path.join(wd, f"{self.name}.log")
        self.settings = settings
        self.start()

    def start(self):
        args = self.wrapper + [BRIDGE] + list(self.config_file and ["-c", self.config_file] or [])
        for k, v in self.settings.items():
            args += ["-X", f"{k}={v}"]
        self.logf = open(self.log_path, "ab")
        self.proc = spawn(args, stdout=self.logf, stderr=subprocess.STDOUT, env=clean_env())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        rc = stop_process(self.proc, sig, timeout)
        self.logf.close()
        return rc

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def bridge_settings(bootstrap, sandbox, topic, dlq, group="lbtest", **extra):
    s = {
        "kafka.bootstrap.servers": bootstrap,
        "kafka.group.id": group,
        "kafka.consumer.session.timeout.ms": "6000",
        "kafka.consumer.heartbeat.interval.ms": "500",
        "kafka.consumer.max.poll.interval.ms": "30000",
        "kafka.topic.metadata.refresh.interval.ms": "2000",
        "input.topics": topic,
        "dlq.topic": dlq,
        "apps": ",".join(f"{a}:{k}" for a, k in APPS.items()),
        "api.url": sandbox.url,
        "api.timeout.ms": "5000",
        "batch.linger.ms": "100",
        "batch.max.wait.ms": "1000",
        "retry.backoff.initial.ms": "50",
        "retry.backoff.max.ms": "1000",
        "shutdown.timeout.ms": "10000",
        "log.level": "info",
    }
    if os.environ.get("LB_TEST_KAFKA_DEBUG"):  # e.g. cgrp,fetch: librdkafka's debug log
        s["kafka.debug"] = os.environ["LB_TEST_KAFKA_DEBUG"]
        s["log.level"] = "debug"
    s.update({k.replace("_", "."): str(v) for k, v in extra.items()})
    return s


def request_overlaps(sandbox):
    """Pairs of requests that applied actions of one (app, user) and were
    at the sandbox at once: the later one's headers came before the earlier
    one's answer was made (req log start_ms, reply_ms), so the bridge sent
    it before it could have the answer. The sandbox's own busy set sees
    only bodies that arrive while another is held (milliseconds with an
    instant API); this sees every request that started in that window.
    Returns [(user, earlier req, later req)]."""
    if not sandbox.req_path or not os.path.exists(sandbox.req_path):
        return []
    span = {r["req"]: (r["start_ms"], r["reply_ms"]) for r in sandbox.requests()}
    reqs = {}
    for rec in sandbox.accepted():
        reqs.setdefault((rec["appId"], rec["user"]), set()).add(rec["req"])
    out = []
    for user, ids in reqs.items():
        ordered = sorted((span[i][0], span[i][1], i) for i in ids if i in span)
        for (_, reply, a), (start, _, b) in zip(ordered, ordered[1:]):
            if start < reply:
                out.append((user, a, b))
    return out


def late_resends(sandbox):
    """Requests that applied again a user's action already applied, after a
    later action of that user was applied: in the accepted log's order (the
    sandbox's), per (app, user), a request holding a duplicate whose
    highest seq is below the highest applied before it. A retry of a
    request whose answer was lost is fine while nothing newer of its users
    went first (the ledger holds them); a new owner's redo after a crash or
    a rebalance is not (it may), so only tests with one bridge that never
    stops in the middle ask for this. Returns [(user, req)]."""
    per_user = {}
    for rec in sandbox.accepted():
        reqs = per_user.setdefault((rec["appId"], rec["user"]), {})
        reqs.setdefault(rec["req"], []).append(rec["action"]["params"]["seq"])
    out = []
    for user, reqs in per_user.items():
        applied, top = set(), -1
        for req, seqs in reqs.items():  # dicts keep the log's order
            if applied & set(seqs) and max(seqs) < top:
                out.append((user, req))
            applied.update(seqs)
            top = max(top, max(seqs))
    return out


def check_invariants(events, sandbox, dlq_records, allow_dup=True, expect_dead=None,
                     limit_403_ok=False, one_bridge=False):
    """delivered ∪ dead-lettered = produced; per-user order; API rules.
    one_bridge: one bridge ran, never stopped mid-way, so a re-sent action
    never follows a later one of its user (late_resends). Returns a dict of
    counts."""
    produced = {e["eid"]: e for e in events if e is not None}
    delivered = {}
    dups = 0
    last_seq = {}
    order_breaks = 0
    check(produced, "no event produced: nothing to check")
    for rec in sandbox.accepted():
        eid = rec["action"].get("eid")
        check(eid in produced, f"sandbox accepted an unknown action {rec['action']}")
        # one app per call: the action's own appId is the request's
        check(rec["action"].get("appId") == rec["appId"],
              f"an action of {rec['action'].get('appId')} in a request of {rec['appId']}")
        if eid in delivered:
            dups += 1
            continue
        delivered[eid] = rec
        # the sandbox's identity: userId, else deviceId (as the API's)
        user = (rec["appId"], rec["user"])
        seq = rec["action"]["params"]["seq"]
        if user in last_seq and seq < last_seq[user]:
            order_breaks += 1
        last_seq[user] = max(seq, last_seq.get(user, -1))
    dead = {}
    for r in dlq_records:
        try:
            eid = json.loads(r["value"]).get("eid")
        except (ValueError, AttributeError):
            eid = None
        if eid is None:
            continue
        dead[eid] = r
    missing = [eid for eid in produced if eid not in delivered and eid not in dead]
    check(not missing, f"{len(missing)} event(s) neither delivered nor dead-lettered, e.g. {missing[:5]}")
    if not allow_dup:
        check(dups == 0, f"{dups} duplicate deliveries")
    check(order_breaks == 0, f"per-user order broken {order_breaks} time(s)")
    st = sandbox.stats()
    check(st.get("user_overlap", 0) == 0, f"concurrent requests for one user: {st}")
    if one_bridge:
        late = late_resends(sandbox)
        check(not late, f"{len(late)} request(s) applied again a user's action after a "
              f"later one of that user, e.g. {late[:3]}")
    overlaps = request_overlaps(sandbox)
    check(not overlaps, f"{len(overlaps)} request(s) sent for a user before the answer to "
          f"its previous one existed, e.g. {overlaps[:3]}")
    if not limit_403_ok:
        check(st.get("limit_violations", 0) == 0, f"requests over the limits: {st}")
    check(st.get("rule_violations", 0) == 0,
          f"requests of the wrong form (query, Content-Type, apiVersion, time): {st}")
    check(st.get("max_users_seen", 0) <= 50, f"max users per request {st.get('max_users_seen')}")
    check(st.get("max_actions_seen", 0) <= 500, f"max actions per request {st.get('max_actions_seen')}")
    if expect_dead is not None:
        check(set(dead) == set(expect_dead),
              f"dead-lettered {sorted(set(dead) ^ set(expect_dead))[:10]} differ from expected")
    both = len(set(delivered) & set(dead))
    return {"produced": len(produced), "delivered": len(delivered), "dead_lettered": len(dead),
            "duplicates": dups, "delivered_and_dead": both}
