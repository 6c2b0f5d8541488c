#!/usr/bin/env python3
"""A real Apache Kafka broker (KRaft, single node, 127.0.0.1) for tests.

Standard library only. The broker's jars come from Maven Central through
tests/kafka/pom.xml and are cached in tests/kafka/jars/<version>/ (git-ignored);
Maven also keeps its own cache in ~/.m2, so the network is needed once per
machine.

Use from a Python test:

    import sys; sys.path.insert(0, "tests/kafka")
    import kafka_broker as kb

    reason = kb.unavailable_reason()          # None when a broker can be run
    if reason:
        if kb.real_kafka_required():          # LEANBRIDGE_REQUIRE_REAL_KAFKA=1
            raise SystemExit("real Kafka required but unavailable: " + reason)
        print("SKIPPED: " + reason); ...

    with kb.Broker() as broker:               # start(): fresh dir, free ports
        broker.create_topic("events", partitions=12)
        run_bridge(bootstrap=broker.bootstrap)   # "127.0.0.1:PORT"
        broker.restart(downtime_s=5)          # same ports, same data
        offsets = broker.group_offsets("leanbridge")
    # stop(): SIGTERM, SIGKILL fallback, temp dir removed

CLI:

    python3 tests/kafka/kafka_broker.py fetch [--version V]
    python3 tests/kafka/kafka_broker.py start [--version V] [--topic NAME:PARTS]...
        prints "BOOTSTRAP=127.0.0.1:PORT" (and the data dir) and stays up until
        SIGTERM/SIGINT.
    python3 tests/kafka/kafka_broker.py smoke [--version V]
        kcat (Debian's librdkafka 2.0.2) produces, consumes, and consumes as a
        group with commits; exits 0 when all of it works.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
POM = os.path.join(HERE, "pom.xml")
JARS_ROOT = os.path.join(HERE, "jars")

# Newest release shown to work with Debian 12's librdkafka 2.0.2 (kcat):
# produce, consume, consumer group join + offset commit + committed-offset
# read-back. See tests/kafka/README.md for the versions tried.
DEFAULT_VERSION = "4.4.0"
VERSION_ENV = "LEANBRIDGE_KAFKA_VERSION"
REQUIRE_ENV = "LEANBRIDGE_REQUIRE_REAL_KAFKA"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# JVM flags for the short-lived tool processes (topic creation, group
# describe): small heap, quick start-up, quiet logging.
TOOL_JVM = [
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
]


class KafkaUnavailable(RuntimeError):
    """The broker cannot be obtained here (no Java, no Maven, no network...)."""


class BrokerError(RuntimeError):
    """The broker was obtained but misbehaved (did not start, tool failed)."""


def default_version() -> str:
    return os.environ.get(VERSION_ENV) or DEFAULT_VERSION


def real_kafka_required() -> bool:
    """True when the real-broker tests must run (CI sets LEANBRIDGE_REQUIRE_REAL_KAFKA=1)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def _log(msg: str) -> None:
    print(f"[kafka_broker] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Jars


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    java = shutil.which("java")
    if not java:
        raise KafkaUnavailable("java not found (install openjdk-17-jre-headless)")
    return java


def _java_major(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True,
                             timeout=60).stderr
    except (OSError, subprocess.SubprocessError) as e:
        raise KafkaUnavailable(f"cannot run {java}: {e}") from e
    # openjdk version "17.0.15" 2025-04-15   /   java version "1.8.0_..."
    for line in out.splitlines():
        if "version" in line and '"' in line:
            v = line.split('"')[1]
            parts = v.split(".")
            try:
                return int(parts[1]) if parts[0] == "1" else int(parts[0])
            except (ValueError, IndexError):
                break
    raise KafkaUnavailable(f"cannot tell the Java version from: {out.strip()[:200]}")


def jars_dir(version: str) -> str:
    return os.path.join(JARS_ROOT, version)


def _pom_digest() -> str:
    import hashlib
    with open(POM, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _jars_complete(d: str) -> bool:
    """The cache is complete when fetched from the current pom.xml."""
    try:
        with open(os.path.join(d, ".complete")) as f:
            return f.read().split()[-1:] == [_pom_digest()]
    except OSError:
        return False


def ensure_jars(version: str | None = None, quiet: bool = True) -> str:
    """Return the directory holding every jar of Kafka `version`, fetching them
    with Maven the first time. Raises KafkaUnavailable with the reason when
    they cannot be had (no mvn, no network to Maven Central, unknown version).
    Safe to call from several processes at once (a file lock serialises them).
    """
    version = version or default_version()
    d = jars_dir(version)
    if _jars_complete(d):
        return d
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaUnavailable("mvn not found (install maven) to fetch Kafka jars")
    os.makedirs(JARS_ROOT, exist_ok=True)
    with open(os.path.join(JARS_ROOT, f".lock-{version}"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(d):
            return d
        tmp = tempfile.mkdtemp(prefix=f".fetch-{version}-", dir=JARS_ROOT)
        # -U: retry artifacts whose earlier failure Maven cached (e.g. a run
        # without network); release jars already in ~/.m2 are not re-fetched.
        cmd = [mvn, "-B", "-U", "-f", POM, f"-Dkafka.version={version}",
               f"{DEPENDENCY_PLUGIN}:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        if quiet:
            cmd.insert(2, "-q")
        t0 = time.monotonic()
        _log(f"fetching Kafka {version} jars with Maven (first time only)...")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaUnavailable(f"mvn timed out fetching Kafka {version}") from e
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            out = (p.stdout + p.stderr).strip().splitlines()
            out = [re.sub(r"\x1b\[[0-9;]*m", "", l).strip() for l in out]
            boiler = ("[ERROR] Re-run Maven", "[ERROR] For more information",
                      "[ERROR] [Help", "[ERROR] To see the full")
            errs = [l for l in out if l.startswith("[ERROR] ")
                    and not l.startswith(boiler)] or out
            raise KafkaUnavailable(
                f"mvn could not fetch org.apache.kafka:kafka_2.13:{version} "
                f"(no network to Maven Central?): " + " | ".join(errs[-4:])[:800])
        if not any(n.startswith("kafka_2.13-") for n in os.listdir(tmp)):
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaUnavailable(f"mvn ran but no kafka_2.13 jar for {version}")
        with open(os.path.join(tmp, ".complete"), "w") as f:
            f.write(f"{version} {_pom_digest()}\n")
        shutil.rmtree(d, ignore_errors=True)
        os.rename(tmp, d)
        _log(f"Kafka {version} jars ready in {d} ({time.monotonic() - t0:.1f} s)")
        return d


def jars_or_reason(version: str | None = None) -> tuple[str | None, str | None]:
    """(dir, None) when the jars are there or could be fetched, else (None, reason)."""
    try:
        return ensure_jars(version), None
    except KafkaUnavailable as e:
        return None, str(e)


def unavailable_reason(version: str | None = None) -> str | None:
    """None when a real broker can be started here (Java >= 17, kcat, jars,
    fetching them if needed); otherwise a one-line reason to SKIP with."""
    try:
        major = _java_major(_java())
        if major < 17:
            return f"Kafka 4.x needs Java >= 17, found {major}"
        if not shutil.which("kcat"):
            return "kcat not found (apt-get install kcat)"
        ensure_jars(version)
    except KafkaUnavailable as e:
        return str(e)
    return None


def skip_unless_available(fail) -> None:
    """For an e2e test's start: returns when a broker can run here; else
    calls fail(reason) when one is required (LEANBRIDGE_REQUIRE_REAL_KAFKA=1),
    or prints SKIPPED and exits 77 (ctest's SKIP_RETURN_CODE)."""
    reason = unavailable_reason()
    if not reason:
        return
    if real_kafka_required():
        fail(f"a real Kafka broker is required ({REQUIRE_ENV}=1) but: {reason}")
    print(f"SKIPPED: no real Kafka broker here: {reason}")
    sys.exit(77)


_class_cache: dict[tuple[str, str], bool] = {}


def _has_class(jdir: str, cls: str) -> bool:
    key = (jdir, cls)
    if key not in _class_cache:
        entry = cls.replace(".", "/") + ".class"
        found = False
        for n in sorted(os.listdir(jdir)):
            if not n.endswith(".jar") or not n.startswith("kafka"):
                continue
            try:
                with zipfile.ZipFile(os.path.join(jdir, n)) as z:
                    z.getinfo(entry)
                    found = True
                    break
            except (KeyError, zipfile.BadZipFile):
                continue
        _class_cache[key] = found
    return _class_cache[key]


def _pick_class(jdir: str, *candidates: str) -> str:
    for c in candidates:
        if _has_class(jdir, c):
            return c
    raise BrokerError(f"none of {candidates} in {jdir}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _new_cluster_id() -> str:
    """A random KRaft cluster id. One that starts with '-' would be read as
    an option by the storage tool, so draw again (1 in 64)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _pdeathsig():
    """preexec_fn: the broker gets SIGKILL if the process that started it dies."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


# --------------------------------------------------------------------------
# Segment files (to corrupt a record batch in place: the broker serves
# fetches from the file as it is and checks no CRC on fetch)


def record_batches(path: str) -> list[dict]:
    """The record batches (magic 2) of a segment file: dicts with pos, base,
    last, count, attributes (& 7: the codec) and payload (start, end) in the
    file."""
    import struct
    with open(path, "rb") as f:
        d = f.read()
    out, pos = [], 0
    while pos + 61 <= len(d):
        base, length = struct.unpack(">qi", d[pos:pos + 12])
        magic = d[pos + 16]
        attrs, last_delta = struct.unpack(">hi", d[pos + 21:pos + 27])
        count = struct.unpack(">i", d[pos + 57:pos + 61])[0]
        if magic != 2:
            raise BrokerError(f"{path}: batch at byte {pos} has magic {magic}")
        out.append({"pos": pos, "base": base, "last": base + last_delta, "count": count,
                    "attributes": attrs, "payload": (pos + 61, pos + 12 + length)})
        pos += 12 + length
    if pos != len(d):
        raise BrokerError(f"{path}: {len(d) - pos} trailing bytes after the last batch")
    return out


def corrupt_batch(path: str, batch: dict, n: int = 16) -> int:
    """Inverts n bytes in the middle of batch's payload (one of
    record_batches(path)), in place. Returns the payload's length."""
    start, end = batch["payload"]
    if end - start < 4 * n:
        raise BrokerError(f"payload of {end - start} bytes is too small to cut into")
    at = start + (end - start) // 2 - n // 2
    fd = os.open(path, os.O_RDWR)
    try:
        old = os.pread(fd, n, at)
        os.pwrite(fd, bytes(c ^ 0xFF for c in old), at)
    finally:
        os.close(fd)
    return end - start


# --------------------------------------------------------------------------
# Broker


class Broker:
    """One KRaft node (broker + controller) on 127.0.0.1 in a fresh temp dir.

    Attributes after start(): bootstrap ("127.0.0.1:PORT"), port,
    controller_port, workdir, log_dirs, log_path, version.
    """

    def __init__(self, version: str | None = None, *, heap: str = "512m",
                 partitions: int = 1, extra_props: dict | None = None,
                 ready_timeout_s: float = 60.0, workdir_parent: str | None = None,
                 die_with_parent: bool | None = None, jvm_opts: list | None = None):
        self.version = version or default_version()
        self.heap = heap
        self.partitions = partitions
        self.extra_props = dict(extra_props or {})
        self.ready_timeout_s = ready_timeout_s
        self.workdir_parent = workdir_parent
        # PR_SET_PDEATHSIG fires when the starting *thread* exits, so only
        # default to it when started from the main thread.
        self.die_with_parent = die_with_parent
        # Extra JVM flags, e.g. ["-XX:TieredStopAtLevel=1"] starts ~2 s faster
        # (measured 4.5 s vs 7 s to metadata) at the cost of broker throughput.
        self.jvm_opts = list(jvm_opts or [])
        self.jars: str | None = None
        self.workdir: str | None = None
        self.port: int | None = None
        self.controller_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.ready_after_s: float | None = None
        self._logf = None

    # -- paths / properties ------------------------------------------------
    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_dirs(self) -> str:
        return os.path.join(self.workdir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "broker.log")

    @property
    def config_path(self) -> str:
        return os.path.join(self.workdir, "server.properties")

    def _classpath(self) -> str:
        return os.path.join(self.jars, "*")

    def _properties(self) -> dict:
        p = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (f"PLAINTEXT://127.0.0.1:{self.port},"
                          f"CONTROLLER://127.0.0.1:{self.controller_port}"),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.log_dirs,
            "num.partitions": str(self.partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.io.threads": "4",
            "num.network.threads": "2",
            "delete.topic.enable": "true",
        }
        p.update({k: str(v) for k, v in self.extra_props.items()})
        return p

    # -- life cycle ----------------------------------------------------------
    def start(self) -> "Broker":
        """Fetch jars if needed, format a fresh data dir (first start only),
        launch the broker and wait until its metadata answers."""
        if self.proc and self.proc.poll() is None:
            return self
        java = _java()
        if self.jars is None:
            self.jars = ensure_jars(self.version)
        first = self.workdir is None
        try:
            if first:
                self.workdir = tempfile.mkdtemp(prefix=f"lb-kafka-{self.version}-",
                                                dir=self.workdir_parent)
                self.port = _free_port()
                self.controller_port = _free_port()
                while self.controller_port == self.port:
                    self.controller_port = _free_port()
                with open(self.config_path, "w") as f:
                    for k, v in self._properties().items():
                        f.write(f"{k}={v}\n")
                self._format(java)
            else:
                # Restart: same ports (clients reconnect to the same address);
                # wait for the old sockets to be released.
                deadline = time.monotonic() + 30
                while not (_port_free(self.port) and _port_free(self.controller_port)):
                    if time.monotonic() > deadline:
                        raise BrokerError(f"ports {self.port}/{self.controller_port} "
                                          "still busy")
                    time.sleep(0.2)
            self._launch(java)
            self._wait_ready()
        except BaseException:
            # Leave nothing behind: no process, and no temp dir unless this
            # was a restart (whose data the caller may still want).
            self.shutdown(graceful=False)
            if first and self.workdir:
                if os.environ.get("LEANBRIDGE_KEEP_KAFKA_DIR") != "1":
                    shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None
                self.port = self.controller_port = None
            raise
        return self

    def _format(self, java: str) -> None:
        cmd = [java, *TOOL_JVM, "-cp", self._classpath(), "kafka.tools.StorageTool",
               "format", "-t", _new_cluster_id(), "-c", self.config_path, "-g"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise BrokerError(f"StorageTool format failed ({p.returncode}): "
                              f"{(p.stdout + p.stderr).strip()[-2000:]}")

    def _launch(self, java: str) -> None:
        self.starts += 1
        self._logf = open(self.log_path, "ab")
        self._logf.write(f"\n==== start #{self.starts} at {time.ctime()} ====\n".encode())
        self._logf.flush()
        cmd = [java, f"-Xmx{self.heap}", f"-Xms{min_heap(self.heap)}",
               "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
               "-Dorg.slf4j.simpleLogger.showDateTime=true",
               "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn",
               "-Dorg.slf4j.simpleLogger.log.kafka.request.logger=warn",
               *self.jvm_opts,
               "-cp", self._classpath(), "kafka.Kafka", self.config_path]
        die = self.die_with_parent
        if die is None:
            die = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
            cwd=self.workdir, start_new_session=True,
            preexec_fn=_pdeathsig if die else None)

    def metadata(self, timeout_s: float = 5.0) -> dict | None:
        """The cluster metadata as kcat -L -J sees it, or None if it did not answer."""
        try:
            p = subprocess.run(["kcat", "-L", "-J", "-b", self.bootstrap,
                                "-m", str(max(1, int(timeout_s)))],
                               capture_output=True, text=True, timeout=timeout_s + 10)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def _wait_ready(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"Kafka {self.version} exited with {self.proc.returncode} "
                                  f"during start-up; log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                tail = self.log_tail()
                _log(f"broker not ready after {self.ready_timeout_s:.0f} s; log tail:\n{tail}")
                self._kill_process()
                raise BrokerError(f"Kafka {self.version} not ready on {self.bootstrap} "
                                  f"after {self.ready_timeout_s:.0f} s; log tail:\n{tail}")
            # Cheap TCP probe first: kcat would spend its whole -m timeout
            # retrying a port that is not listening yet.
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.1)
                continue
            md = self.metadata(timeout_s=2)
            if md and any(b.get("id") == 1 for b in md.get("brokers", [])):
                self.ready_after_s = time.monotonic() - t0
                return
            time.sleep(0.1)

    def log_tail(self, lines: int = 60) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                data = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(data.splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def shutdown(self, graceful: bool = True, timeout_s: float = 30.0) -> None:
        """Stop the broker process but keep its data and ports, so start()
        brings the same broker back. graceful=False is a SIGKILL crash."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _log(f"broker ignored SIGTERM for {timeout_s:.0f} s; SIGKILL")
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        # Anything left in the process group (there should be nothing).
        self._signal(signal.SIGKILL)
        self.proc = None
        if self._logf:
            self._logf.close()
            self._logf = None

    def _kill_process(self) -> None:
        if self.proc:
            self.shutdown(graceful=False)

    def restart(self, downtime_s: float = 0.0, graceful: bool = True) -> None:
        """Stop the broker (SIGTERM, or SIGKILL if not graceful), stay down for
        downtime_s, start it again on the same ports with the same data."""
        self.shutdown(graceful=graceful)
        if downtime_s > 0:
            time.sleep(downtime_s)
        try:
            self.start()
        except BrokerError as e:
            # Once in a CI run Kafka 4.4 exited with 1 a few seconds into a
            # restart, with nothing in its log; the same data dir started
            # fine after. The broker is the tests' infrastructure, not
            # what they test: say so, and start it once more.
            _log(f"broker restart failed ({str(e).splitlines()[0]}); starting it once more")
            time.sleep(2)
            self.start()

    def stop(self) -> None:
        """Stop the broker and remove its temp dir (data and log)."""
        self.shutdown(graceful=True)
        if self.workdir and os.environ.get("LEANBRIDGE_KEEP_KAFKA_DIR") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def __enter__(self) -> "Broker":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- tools ---------------------------------------------------------------
    def run_tool(self, cls: str, *args: str, timeout_s: float = 120.0,
                 check: bool = True) -> subprocess.CompletedProcess:
        """Run a Kafka command-line tool class against this broker's jars."""
        if self.jars is None:
            self.jars = ensure_jars(self.version)
        cmd = [_java(), *TOOL_JVM, "-cp", self._classpath(), cls, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if check and p.returncode != 0:
            raise BrokerError(f"{cls} {' '.join(args)} failed ({p.returncode}): "
                              f"{(p.stdout + p.stderr).strip()[-2000:]}")
        return p

    def topic_command_class(self) -> str:
        # 3.6+ and 4.x: org.apache.kafka.tools.TopicCommand; older: kafka.admin.
        return _pick_class(self.jars or ensure_jars(self.version),
                           "org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand")

    def group_command_class(self) -> str:
        return _pick_class(self.jars or ensure_jars(self.version),
                           "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                           "kafka.admin.ConsumerGroupCommand")

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1,
                     config: dict | None = None, wait: bool = True) -> None:
        """Create a topic (no error if it exists) and, with wait, return once
        the broker's metadata shows every partition with a leader."""
        args = ["--bootstrap-server", self.bootstrap, "--create", "--if-not-exists",
                "--topic", name, "--partitions", str(partitions),
                "--replication-factor", str(replication)]
        for k, v in (config or {}).items():
            args += ["--config", f"{k}={v}"]
        self.run_tool(self.topic_command_class(), *args)
        if wait:
            self.wait_topic(name, partitions)

    def wait_topic(self, name: str, partitions: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            md = self.metadata(timeout_s=2) or {}
            for t in md.get("topics", []):
                if t.get("topic") == name:
                    parts = t.get("partitions", [])
                    if len(parts) >= partitions and all(p.get("leader", -1) >= 0
                                                        for p in parts):
                        return
            if time.monotonic() > deadline:
                raise BrokerError(f"topic {name} not ready with {partitions} partitions")
            time.sleep(0.2)

    def delete_topic(self, name: str) -> None:
        self.run_tool(self.topic_command_class(), "--bootstrap-server", self.bootstrap,
                      "--delete", "--if-exists", "--topic", name)

    def topics(self) -> dict:
        """{topic: partition count} from the metadata (internal topics included)."""
        md = self.metadata() or {}
        return {t["topic"]: len(t.get("partitions", [])) for t in md.get("topics", [])}

    def group_offsets(self, group: str) -> list[dict]:
        """The group's committed offsets, via ConsumerGroupCommand --describe:
        [{"topic", "partition", "committed" (None if none), "end", "lag"}].
        Works while the group is empty (no member) too."""
        p = self.run_tool(self.group_command_class(), "--bootstrap-server", self.bootstrap,
                          "--describe", "--group", group, "--offsets", check=False)
        text = p.stdout
        if p.returncode != 0 and "does not exist" not in (p.stdout + p.stderr):
            raise BrokerError(f"describe group {group} failed: {(p.stdout + p.stderr)[-1500:]}")
        rows = []
        header = None
        for line in text.splitlines():
            cols = line.split()
            if not cols:
                continue
            if cols[0] == "GROUP" and "PARTITION" in cols:
                header = cols
                continue
            if header and len(cols) >= 6 and cols[0] == group:
                rec = dict(zip(header, cols))

                def num(v):
                    return None if v in ("-", None) else int(v)
                rows.append({"topic": rec["TOPIC"], "partition": int(rec["PARTITION"]),
                             "committed": num(rec.get("CURRENT-OFFSET")),
                             "end": num(rec.get("LOG-END-OFFSET")),
                             "lag": num(rec.get("LAG"))})
        return sorted(rows, key=lambda r: (r["topic"], r["partition"]))

    def end_offsets(self, topic: str) -> dict[int, int]:
        """{partition: high watermark} of a topic, via kcat -Q (timestamp -1)."""
        md = self.metadata() or {}
        parts = []
        for t in md.get("topics", []):
            if t.get("topic") == topic:
                parts = [p["partition"] for p in t.get("partitions", [])]
        if not parts:
            raise BrokerError(f"no such topic {topic}")
        args = ["kcat", "-Q", "-b", self.bootstrap, "-J"]
        for pnum in parts:
            args += ["-t", f"{topic}:{pnum}:-1"]
        # Right after a (re)start the metadata answers before every
        # partition has its leader again: retry those answers a while.
        deadline = time.monotonic() + 30
        while True:
            p = subprocess.run(args, capture_output=True, text=True, timeout=30)
            transient = any(s in p.stderr for s in (
                "Not leader", "Leader not available", "Unknown topic or partition"))
            if p.returncode == 0 or not transient or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if p.returncode != 0:
            raise BrokerError(f"kcat -Q failed: {p.stderr.strip()[-500:]}")
        res = json.loads(p.stdout)
        out = {}
        for pnum_s, info in res.get(topic, {}).items():
            if isinstance(info, dict) and "offset" in info:
                out[int(pnum_s)] = int(info["offset"])
        return out


def min_heap(heap: str) -> str:
    """-Xms: a quarter of -Xmx (keeps the start-up footprint small)."""
    unit = heap[-1].lower()
    if unit in "kmg" and heap[:-1].isdigit():
        return f"{max(1, int(heap[:-1]) // 4)}{unit}"
    return heap


# --------------------------------------------------------------------------
# Compatibility smoke test with Debian's librdkafka (through kcat)


def _kcat(args, input_text=None, timeout=60):
    p = subprocess.run(["kcat", *args], input=input_text, capture_output=True,
                       text=True, timeout=timeout)
    return p


def smoke(broker: Broker, n: int = 300, partitions: int = 3,
          rebalance: bool = True) -> list[str]:
    """Return a list of failures (empty = librdkafka/kcat works with this broker)."""
    fails = []
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    group = f"smoke-grp-{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic, partitions)
    lines = "".join(f"user{i % 37}:v{i}\n" for i in range(n))
    p = _kcat(["-P", "-b", broker.bootstrap, "-t", topic, "-K:",
               "-X", "enable.idempotence=true", "-z", "lz4"], lines)
    if p.returncode != 0:
        fails.append(f"produce (idempotent, lz4): rc={p.returncode} {p.stderr.strip()[-300:]}")
    p = _kcat(["-C", "-b", broker.bootstrap, "-t", topic, "-e", "-q", "-f", "%k:%s\n"])
    got = p.stdout.splitlines()
    if p.returncode != 0 or sorted(got) != sorted(lines.splitlines()):
        fails.append(f"consume: rc={p.returncode} got {len(got)}/{n}: {p.stderr.strip()[-300:]}")
    # Consumer group: join, consume to the end, commit (auto commit + commit on
    # close), then read the committed offsets back two ways.
    p = _kcat(["-G", group, "-b", broker.bootstrap, "-e", "-q", "-f", "%s\n",
               "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
               "-X", "partition.assignment.strategy=cooperative-sticky", topic], timeout=90)
    got = p.stdout.splitlines()
    if p.returncode != 0 or len(got) != n:
        fails.append(f"group consume: rc={p.returncode} got {len(got)}/{n}: "
                     f"{p.stderr.strip()[-300:]}")
    ends = broker.end_offsets(topic)
    if sum(ends.values()) != n:
        fails.append(f"end offsets {ends} sum != {n}")
    rows = [r for r in broker.group_offsets(group) if r["topic"] == topic]
    committed = {r["partition"]: r["committed"] for r in rows}
    if committed != ends:
        fails.append(f"committed offsets {committed} != end offsets {ends}")
    # A second run of the same group starts from the commits: nothing left.
    p = _kcat(["-G", group, "-b", broker.bootstrap, "-e", "-q", "-f", "%s\n",
               "-X", "auto.offset.reset=earliest", topic], timeout=90)
    if p.returncode != 0 or p.stdout.strip():
        fails.append(f"group re-consume after commit: rc={p.returncode} "
                     f"got {len(p.stdout.splitlines())} (want 0)")
    # Headers (used by the DLQ) round-trip.
    p = _kcat(["-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-H", "x-err=bad json",
               "-K:"], "k:v\n")
    p2 = _kcat(["-C", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-o", "-1", "-e",
                "-q", "-f", "%h|%k|%s\n"])
    if "x-err=bad json|k|v" not in p2.stdout:
        fails.append(f"headers round-trip: {p.returncode}/{p2.returncode} {p2.stdout!r}")
    if rebalance:
        fails += _smoke_two_members(broker)
    return fails


def _smoke_two_members(broker: Broker, n: int = 20000, partitions: int = 6) -> list[str]:
    """Two kcat -G members (cooperative-sticky) share a topic: each gets a
    share of the partitions, together they see every message, the group's
    commits reach the end."""
    fails = []
    topic = f"smoke2.{uuid.uuid4().hex[:8]}"
    group = f"smoke2-grp-{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic, partitions)
    common = ["-b", broker.bootstrap, "-q", "-u", "-f", "%p:%s\n",
              "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
              "-X", "partition.assignment.strategy=cooperative-sticky",
              "-X", "auto.commit.interval.ms=500"]
    with tempfile.TemporaryDirectory() as td:
        outs = [os.path.join(td, f"c{i}.out") for i in (1, 2)]
        procs = []
        for out in outs:
            with open(out, "w") as fo:
                procs.append(subprocess.Popen(["kcat", "-G", group, *common, topic],
                                              stdout=fo, stderr=subprocess.DEVNULL))
            time.sleep(3)
        time.sleep(3)  # let the second member's rebalance finish
        lines = "".join(f"u{i % 500}:{i}\n" for i in range(n))
        p = _kcat(["-P", "-b", broker.bootstrap, "-t", topic, "-K:"], lines)
        if p.returncode != 0:
            fails.append(f"two members: produce rc={p.returncode}")

        def seen():
            total = 0
            for out in outs:
                with open(out, "rb") as fo:
                    total += fo.read().count(b"\n")
            return total
        deadline = time.monotonic() + 60
        while seen() < n and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1.5)  # > auto.commit.interval.ms; close commits too
        for pr in procs:
            pr.send_signal(signal.SIGINT)  # kcat closes the consumer: commit + leave
        for pr in procs:
            try:
                pr.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
        got = []
        parts = []
        for out in outs:
            with open(out) as fo:
                rows = [l.split(":", 1) for l in fo.read().splitlines() if ":" in l]
            got += [v for _, v in rows]
            parts.append(sorted({int(pn) for pn, _ in rows}))
    if len(set(got)) != n:
        fails.append(f"two members: saw {len(set(got))} distinct of {n}")
    if not all(parts) or set(parts[0]) & set(parts[1]):
        fails.append(f"two members: partitions not shared: {parts}")
    ends = broker.end_offsets(topic)
    committed = {r["partition"]: r["committed"] for r in broker.group_offsets(group)
                 if r["topic"] == topic}
    if committed != ends:
        fails.append(f"two members: committed {committed} != end {ends}")
    return fails


# --------------------------------------------------------------------------
# CLI


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch the jars of a version (cached)")
    f.add_argument("--version", default=None)
    s = sub.add_parser("start", help="start a broker; print its bootstrap; run until SIGTERM")
    s.add_argument("--version", default=None)
    s.add_argument("--topic", action="append", default=[], metavar="NAME:PARTITIONS")
    s.add_argument("--partitions", type=int, default=1, help="num.partitions for auto-create")
    s.add_argument("--bootstrap-file", help="also write the bootstrap to this file")
    s.add_argument("--timeout", type=float, default=60.0, help="readiness timeout (s)")
    k = sub.add_parser("smoke", help="check librdkafka (kcat) against a fresh broker")
    k.add_argument("--version", default=None)
    r = sub.add_parser("reason", help="print why a real broker is unavailable (exit 1), "
                       "or nothing (exit 0)")
    r.add_argument("--version", default=None)
    a = ap.parse_args(argv)

    if a.cmd == "fetch":
        t0 = time.monotonic()
        try:
            d = ensure_jars(a.version)
        except KafkaUnavailable as e:
            print(f"UNAVAILABLE: {e}", file=sys.stderr)
            return 3
        print(d)
        _log(f"fetch took {time.monotonic() - t0:.1f} s")
        return 0

    if a.cmd == "reason":
        why = unavailable_reason(a.version)
        if why:
            print(why)
            return 1
        return 0

    if a.cmd == "start":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        b = Broker(a.version, partitions=a.partitions, ready_timeout_s=a.timeout)
        t0 = time.monotonic()
        try:
            b.start()
            for spec in a.topic:
                name, _, parts = spec.partition(":")
                b.create_topic(name, int(parts or 1))
        except KafkaUnavailable as e:
            print(f"UNAVAILABLE: {e}", file=sys.stderr)
            b.stop()
            return 3
        except BrokerError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            b.stop()
            return 1
        _log(f"Kafka {b.version} ready in {time.monotonic() - t0:.1f} s "
             f"(process start to metadata: {b.ready_after_s:.1f} s)")
        print(f"BOOTSTRAP={b.bootstrap}", flush=True)
        print(f"VERSION={b.version}", flush=True)
        print(f"WORKDIR={b.workdir}", flush=True)
        if a.bootstrap_file:
            with open(a.bootstrap_file + ".tmp", "w") as fh:
                fh.write(b.bootstrap + "\n")
            os.rename(a.bootstrap_file + ".tmp", a.bootstrap_file)
        try:
            while not stop.wait(0.5):
                if not b.is_running():
                    print(f"ERROR: broker exited; log tail:\n{b.log_tail()}", file=sys.stderr)
                    return 1
        finally:
            b.stop()
        return 0

    if a.cmd == "smoke":
        t0 = time.monotonic()
        try:
            with Broker(a.version) as b:
                t1 = time.monotonic()
                print(f"Kafka {b.version} on {b.bootstrap}: started in {t1 - t0:.1f} s "
                      f"(metadata after {b.ready_after_s:.1f} s)", flush=True)
                fails = smoke(b)
                print(f"smoke took {time.monotonic() - t1:.1f} s", flush=True)
                if not b.is_running():
                    fails.append("broker died during the smoke test")
                if fails:
                    print(f"log tail:\n{b.log_tail(30)}")
        except KafkaUnavailable as e:
            print(f"UNAVAILABLE: {e}")
            return 3
        except BrokerError as e:
            print(f"ERROR: {e}")
            return 1
        for fl in fails:
            print(f"FAIL: {fl}")
        print(f"Kafka {a.version or default_version()} with librdkafka (kcat): "
              + ("OK" if not fails else f"{len(fails)} failure(s)"))
        return 0 if not fails else 1
    return 2


if __name__ == "__main__":
    sys.exit(_main())
