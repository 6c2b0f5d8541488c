"""The memory bound from the cgroup: the real binary's --check-config run in
a memory cgroup made here (a child of this process's own, v1 or v2,
whichever the machine has) with a 512 MiB limit prints that limit, the
limit file it read, and the bounds sized from it (the consumer's prefetch
at most 20% of the limit, pending.max.bytes 40% less the prefetch, at least
20%, pending.max.actions that / 64); an explicit pending.max.bytes (-X or
the environment) wins over its auto value while pending.max.actions stays
auto.

Making a cgroup needs root and a writable cgroup filesystem: without them
the test exits 77 (skipped), except under CI=true or
LEANBRIDGE_REQUIRE_DOCKER=1, where that is a failure."""
import os
import re
import subprocess
import sys

import harness as h

LIMIT = 512 * 1024 * 1024
AUTO = "auto: 40% less the consumer's prefetch, at least 20%"
LINE = re.compile(r"memory limit (\d+) bytes \((.*)\); consumer prefetch (\d+) bytes "
                  r"\(queued\.max\.messages\.kbytes \d+, queued\.min\.messages \d+, "
                  r"fetch\.max\.bytes \d+\); pending\.max\.bytes (\d+) \((.*)\), "
                  r"pending\.max\.actions (\d+) \((.*)\)")
BASE = ["-X", "kafka.bootstrap.servers=127.0.0.1:9", "-X", "input.topics=in",
        "-X", "dlq.topic=dlq", "-X", "apps=app1:key1", "--check-config"]


def skip(why):
    if os.environ.get("CI") == "true" or \
            os.environ.get("LEANBRIDGE_REQUIRE_DOCKER", "") not in ("", "0"):
        h.fail(f"{why}; CI=true / LEANBRIDGE_REQUIRE_DOCKER=1 requires a cgroup")
    h.log(f"SKIP: {why}")
    sys.exit(77)


def own_cgroup_dir():
    """(version, directory of this process's memory cgroup), from
    /proc/self/cgroup and /proc/self/mountinfo."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    v1 = [p for _, ctl, p in lines if "memory" in ctl.split(",")]
    v2 = [p for hid, ctl, p in lines if hid == "0" and ctl == ""]
    version, path = (1, v1[0]) if v1 else (2, v2[0]) if v2 else (0, None)
    if not version:
        skip("no memory cgroup in /proc/self/cgroup")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            root, mount = pre.split()[3:5]
            fstype, _, opts = post.split()[:3]
            if (version == 1 and fstype == "cgroup" and "memory" in opts.split(",")) or \
                    (version == 2 and fstype == "cgroup2"):
                rel = path[len(root):] if root != "/" else path
                return version, mount + rel.rstrip("/")
    skip(f"the cgroup v{version} memory hierarchy is not mounted")


def auto_bytes(limit, prefetch):
    """pending.max.bytes as sized: 40% of the limit less the prefetch, at
    least 20% (config.c's share())."""
    def share(n, pct):
        return n // 100 * pct + n % 100 * pct // 100
    return max(share(limit, 40) - prefetch, share(limit, 20))


def check_line(line, limit, source, pending=None):
    """The memory line says limit from source, a prefetch of at most 20% of
    it (at most 1% under: sized, not guessed), and the bounds sized from
    them, but pending.max.bytes when given (set)."""
    m = LINE.fullmatch(line)
    h.check(m is not None, f"memory line not as documented: {line}")
    prefetch = int(m.group(3))
    auto = auto_bytes(limit, prefetch)
    h.check(int(m.group(1)) == limit and m.group(2) == source,
            f"limit {limit} ({source}) wanted: {line}")
    h.check(limit // 5 * 99 // 100 <= prefetch <= limit // 5,
            f"prefetch {prefetch} is not sized to 20% of {limit}: {line}")
    h.check((int(m.group(4)), m.group(5)) == ((pending, "set") if pending else (auto, AUTO)),
            f"pending.max.bytes {pending or auto} wanted: {line}")
    h.check((int(m.group(6)), m.group(7)) == (auto // 64, "auto"),
            f"pending.max.actions {auto // 64} wanted: {line}")


def check_config(cg, *extra, env=None):
    """--check-config run inside cgroup directory cg; its memory line."""
    def enter():
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    e = h.clean_env()
    e.update(env or {})
    p = subprocess.run([h.BRIDGE, *BASE, *extra], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=e, preexec_fn=enter, timeout=60)
    out = p.stdout.decode()
    h.log(f"--check-config {' '.join(extra)} -> exit {p.returncode}\n{out}")
    h.check(p.returncode == 0, "--check-config failed")
    lines = [l for l in out.splitlines() if l.startswith("memory limit ")]
    h.check(len(lines) == 1, "--check-config prints one memory line")
    return lines[0]


version, parent = own_cgroup_dir()
cg = os.path.join(parent, f"lbtest-memlimit-{os.getpid()}")
limit_file = os.path.join(cg, "memory.limit_in_bytes" if version == 1 else "memory.max")
try:
    os.mkdir(cg)
except OSError as e:
    skip(f"cannot make a cgroup under {parent}: {e}")
try:
    try:
        with open(limit_file, "w") as f:
            f.write(str(LIMIT))
    except OSError as e:
        skip(f"cannot set {limit_file}: {e}")
    source = f"cgroup v{version} {limit_file}"

    check_line(check_config(cg), LIMIT, source)
    # An explicit pending.max.bytes wins, -X or the environment; the
    # actions bound stays auto.
    check_line(check_config(cg, "-X", "pending.max.bytes=2000000"), LIMIT, source,
               pending=2000000)
    check_line(check_config(cg, env={"LEANBRIDGE_PENDING_MAX_BYTES": "2000000"}), LIMIT,
               source, pending=2000000)
    # An explicit memory.limit.bytes beats the cgroup's.
    check_line(check_config(cg, "-X", "memory.limit.bytes=268435456"), 268435456,
               "memory.limit.bytes")
finally:
    os.rmdir(cg)
h.log("PASS: the bound follows the cgroup's 512 MiB limit; explicit keys win")
