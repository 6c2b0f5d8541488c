#!/usr/bin/env python3
"""The Docker engine and the images the compose stack needs, on a machine
with Debian's apt mirror and Maven Central but no container registry.

Owns: installing Debian's docker.io / docker-compose / debootstrap / kcat
when missing (as root), starting dockerd when no engine answers (and
stopping only that one), and making, only when missing, the images the
compose file names but nothing here can pull:
  - debian:bookworm and debian:bookworm-slim: debootstrap --variant=minbase
    from the host's apt mirror, with the host's apt sources, `docker import`
    (-slim without documentation, manuals and translations, as the official);
  - apache/kafka:<tag>: docker/test-images/kafka (Debian's Java 17 + the
    broker jars tests/kafka/kafka_broker.py fetches from Maven Central);
  - prom/prometheus:<tag>: docker/test-images/prometheus (Debian's package).
The names come from the compose file as rendered, so it stays the file
users run with the official images.

CLI (what the README's compose section runs on such a machine):
    python3 tests/docker/images.py prepare     # engine up, images made
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
COMPOSE_FILE = os.path.join(ROOT, "docker", "docker-compose.yml")
TEST_IMAGES = os.path.join(ROOT, "docker", "test-images")
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
PACKAGES = ["docker.io", "docker-compose", "debootstrap", "kcat"]


class Unavailable(RuntimeError):
    """No engine can be had here (not root, not Debian, dockerd fails)."""


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout=600, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: "
                           f"{(p.stdout + p.stderr).strip()[-1500:]}")
    return p


def docker(*args, timeout=600, check=True):
    return run([DOCKER, *args], timeout=timeout, check=check)


def install_packages() -> None:
    """Debian's engine, compose 1.29, debootstrap and kcat, if missing."""
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True).stdout != "install ok installed"]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"need Debian packages {' '.join(missing)} (root on Debian)")
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, timeout=600)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env, timeout=1200)


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=30,
                      check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Engine:
    """An answering Docker engine: the one already running, or a dockerd
    started here (stopped by stop(), by its PID, and only that one)."""

    def __init__(self, logdir: str):
        self.proc = None
        self.logdir = logdir

    def start(self, timeout_s=90) -> "Engine":
        install_packages()  # the tier needs compose, debootstrap and kcat too
        if engine_answers():
            log("a Docker engine answers: using it")
            return self
        log("starting dockerd")
        self.log_path = os.path.join(self.logdir, "dockerd.log")
        out = open(self.log_path, "w")
        self.proc = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if engine_answers():
                return self
            time.sleep(1)
        why = f"exited {self.proc.returncode}" if self.proc.poll() is not None \
            else f"did not answer within {timeout_s} s"
        tail = open(self.log_path).read()[-2000:]
        self.stop()
        raise Unavailable(f"dockerd {why}: {tail}")

    def stop(self) -> None:
        if not self.proc:
            return
        log(f"stopping the dockerd started here (pid {self.proc.pid})")
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, timeout=60, check=False).returncode == 0


def host_mirror() -> str:
    """The Debian mirror of the host's apt sources (deb822 or one-line)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = open(path).read()
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M):
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1)
    for path in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*.list")]:
        if os.path.exists(path):
            for line in open(path):
                m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def make_debian_base(work: str) -> None:
    """debian:bookworm and debian:bookworm-slim from the apt mirror."""
    if image_exists("debian:bookworm") and image_exists("debian:bookworm-slim"):
        return
    mirror = host_mirror()
    rootfs = os.path.join(work, "rootfs")
    t0 = time.monotonic()
    log(f"debootstrap bookworm from {mirror}")
    run(["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror], timeout=1200)
    # The host's apt sources (the mirror that answers here), not the
    # one-line file debootstrap wrote; disabled third-party lists stay out.
    os.remove(os.path.join(rootfs, "etc", "apt", "sources.list"))
    for src in glob.glob("/etc/apt/sources.list") + \
            glob.glob("/etc/apt/sources.list.d/*.list") + \
            glob.glob("/etc/apt/sources.list.d/*.sources"):
        text = open(src).read()
        if "debian.org" in text or mirror in text:
            shutil.copy(src, os.path.join(rootfs, src.lstrip("/")))
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in glob.glob(os.path.join(rootfs, d, "*")):
            if os.path.isfile(f):
                os.remove(f)
    docker_import(rootfs, "debian:bookworm")
    # -slim as the official one is made: no documentation, manuals or
    # translations, now or from packages installed later (copyrights stay).
    with open(os.path.join(rootfs, "etc", "dpkg", "dpkg.cfg.d", "docker-slim"), "w") as f:
        f.write(SLIM_DPKG_CFG)
    for pattern in SLIM_REMOVE:
        for path in glob.glob(os.path.join(rootfs, pattern)):
            if path.endswith("/copyright") or not os.path.lexists(path):
                continue  # (gone with a directory linked to another)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    docker_import(rootfs, "debian:bookworm-slim")
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"debian:bookworm and -slim imported in {time.monotonic() - t0:.0f} s")


# What debian:*-slim leaves out (/etc/dpkg/dpkg.cfg.d/docker-slim).
SLIM_DPKG_CFG = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
SLIM_REMOVE = ["usr/share/doc/*/*", "usr/share/groff/*", "usr/share/info/*",
               "usr/share/linda/*", "usr/share/lintian/overrides/*",
               "usr/share/locale/*", "usr/share/man/*"]


def docker_import(rootfs: str, name: str) -> None:
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", rootfs, "-c", "."],
                           stdout=subprocess.PIPE)
    imp = subprocess.run([DOCKER, "import", "--change", 'CMD ["bash"]', "-", name],
                         stdin=tar.stdout, capture_output=True, text=True, timeout=600)
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise RuntimeError(f"docker import of {name} failed: {imp.stderr[-1000:]}")


def compose_images() -> dict:
    """{service: image} of the compose file as rendered (with profiles)."""
    import yaml
    p = run(["docker-compose", "-f", COMPOSE_FILE, "--profile", "monitoring",
             "config"], timeout=120)
    svcs = yaml.safe_load(p.stdout)["services"]
    return {name: s.get("image", "") for name, s in svcs.items()}


def make_kafka(image: str, work: str) -> None:
    if image_exists(image):
        return
    version = image.split(":", 1)[1]
    sys.path.insert(0, os.path.join(ROOT, "tests", "kafka"))
    import kafka_broker as kb
    jars = kb.ensure_jars(version)
    ctx = os.path.join(work, "kafka-ctx")
    shutil.copytree(os.path.join(TEST_IMAGES, "kafka"), ctx)
    shutil.copytree(jars, os.path.join(ctx, "jars"),
                    ignore=shutil.ignore_patterns(".*"))
    t0 = time.monotonic()
    log(f"building the stand-in {image} (Kafka {version} jars from Maven Central)")
    docker("build", "-q", "--force-rm", "--build-arg", f"KAFKA_VERSION={version}",
           "-t", image, ctx, timeout=1800)
    shutil.rmtree(ctx, ignore_errors=True)
    log(f"{image} built in {time.monotonic() - t0:.0f} s")


def make_prometheus(image: str) -> None:
    if image_exists(image):
        return
    t0 = time.monotonic()
    log(f"building the stand-in {image} (Debian's prometheus package)")
    docker("build", "-q", "--force-rm", "-t", image, os.path.join(TEST_IMAGES, "prometheus"),
           timeout=1800)
    log(f"{image} built in {time.monotonic() - t0:.0f} s")


def prepare(with_monitoring=True) -> None:
    """Every image the stack pulls, made here when missing. (The project's
    image is built by `docker-compose build`, not here.)"""
    with tempfile.TemporaryDirectory(prefix="lb-images-") as work:
        make_debian_base(work)
        imgs = compose_images()
        make_kafka(imgs["kafka"], work)
        if with_monitoring:
            make_prometheus(imgs["prometheus"])


def main() -> int:
    if sys.argv[1:] != ["prepare"]:
        print(__doc__.strip().split("CLI")[1], file=sys.stderr)
        return 2
    try:
        Engine(tempfile.gettempdir()).start()
        prepare()
    except (Unavailable, RuntimeError) as e:
        print(f"images: {e}", file=sys.stderr)
        return 1
    names = sorted(set(compose_images().values()))
    print("images: here: " + ", ".join(n for n in names if image_exists(n)))
    print("images: not here (no stand-in; built by `up --build`, or pulled): " +
          ", ".join(n for n in names if not image_exists(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
