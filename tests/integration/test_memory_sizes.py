"""Issue 23: large events within the memory bound. The real bridge, with the
defaults, in a fresh 512 MiB memory cgroup (bench.MemoryCgroup), against the
mock cluster and the sandbox API, drains a backlog of 5 KiB (issue 23's
size: the bridge was OOM-killed), then 16 KiB, 64 KiB and mixed
(heavy-tailed, 100 B..64 KiB) track events, about 1.5x the auto bound
(pending.max.bytes: 40% of the limit less the consumer's prefetch) in
bytes, produced once it has joined. Passes when the OOM killer never
fired, every event was delivered (none dead-lettered) and every offset
committed, and the cgroup's peak stayed under 60% of the limit (about 45%
measured); logs the held bytes at most against the bound and VmRSS per
held byte. (The binary from before issue 23's fix is OOM-killed
here within seconds, in the 5 KiB events.)

AddressSanitizer's allocator makes RSS meaningless (and could use 512 MiB
on its own), so the binaries come from LB_BUILD_DIR, which ctest points at
a non-sanitized Release copy that the fixture integration.release_build
makes (tests/CMakeLists.txt); a sanitized build is refused. Making a cgroup
needs root and a writable cgroup filesystem: without them the test exits 77
(skipped), except under CI=true, where that is a failure.

With the argument `small`: 250,000 events of 100 bytes over 128 partitions
in a 128 MiB cgroup, where librdkafka's queue, not what the bridge holds,
is most of the memory (about 320 bytes a queued message besides its
payload, and one fetch response past the thresholds). Before the prefetch
was sized from the memory limit, its full 150,000-message queue and 32 MiB
fetches took the cgroup's peak to 95 MB (74% of the limit); now 45 MB."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import bench  # noqa: E402  (its harness: the same LB_BUILD_DIR)
import sessions  # noqa: E402

h = bench.h
MB = 1 << 20
SMALL = sys.argv[1:] == ["small"]
if SMALL:
    LIMIT, TOPIC, SETS = 128 << 20, "memsmall", ((100, 250000),)
    FILLED = 0.5  # small actions cost twice their bytes: the queue fills first
else:
    LIMIT, TOPIC = 512 << 20, "memsizes"
    # (value size, events): 5 KiB 150 MB, 16 KiB and 64 KiB 64 MB each, mixed ~35 MB.
    SETS = ((5120, 30000), (16384, 4000), (65536, 1000), ("mixed", 10000))
    FILLED = 0.75
PARTITIONS = 128  # the mock cluster keeps ~5 MB a partition: ~2.5 MB each here


def skip(why):
    if os.environ.get("CI") == "true":
        h.fail(f"{why}; CI=true requires a memory cgroup")
    h.log(f"SKIP: {why}")
    sys.exit(77)


if "ASan" in bench.build_type():
    h.fail(f"{h.BRIDGE} is built with AddressSanitizer: RSS means nothing; point "
           "LB_BUILD_DIR at a Release build (ctest's fixture makes one in release/)")
if os.geteuid() != 0:
    skip("not root: no memory cgroup can be made")
try:
    bench.MemoryCgroup(LIMIT, "probe").close()
except (SystemExit, OSError) as e:
    skip(f"cannot make a memory cgroup: {e}")
bench.ARGS.memory_limit = LIMIT

parts, n = [], 0
for i, (size, count) in enumerate(SETS):
    data, _ = sessions.sized_events(count, size, seed=23 + i, tag=f"m{i}-")
    parts.append(data)
    n += count
data = b"".join(parts)
h.log(f"{n:,} events, {len(data) / MB:.0f} MB: "
      + ", ".join(f"{c:,} of {s if s == 'mixed' or s < 1024 else f'{s // 1024} KiB'}"
                  f"{' B' if s != 'mixed' and s < 1024 else ''}" for s, c in SETS))

wd = h.workdir()
kafka = h.MockKafka({TOPIC: PARTITIONS, f"{TOPIC}.dlq.memory": 1})
apps = {f"app_{i:02d}": f"key-{i:02d}-SECRET" for i in range(4)}
sandbox = h.Sandbox(apps, wd, name="memory", action_log=False, req_log=False)
prod = bench.PacedProducer(kafka, TOPIC, 0, data)
watch = bench.HoldWatch(prod)
try:
    r = bench.run_bridge(kafka, sandbox, apps, wd, TOPIC, "lbtest-memory", n, "memory",
                         timeout=240, sample=watch, interval=0.2)
except bench.RunFailed as e:
    cg = e.cgroup or {}
    h.fail(f"the bridge did not finish: {e.why.splitlines()[0]}; OOM kills "
           f"{cg.get('oom_kills')}, cgroup peak {(cg.get('peak') or 0) / MB:.0f} MB of "
           f"{LIMIT / MB:.0f} MB")
prod.finish("memory")
cg = r["cgroup"]
mt = r["metrics"]
delivered = bench.m(mt, "leanbridge_actions_delivered_total")
dead = bench.m(mt, "leanbridge_actions_dead_lettered_total")
accepted = sandbox.stats()["actions_accepted"]
bound = watch.limit
h.log(f"baseline VmRSS {watch.base_rss / MB:.1f} MB; held at most {watch.max_held / MB:.1f} MB "
      f"of pending.max.bytes {bound / MB:.1f} MB, VmRSS then {watch.rss_at / MB:.1f} MB "
      f"({watch.ratio():.2f}x the held bytes over the baseline); cgroup peak "
      f"{cg['peak'] / MB:.1f} MB of {LIMIT / MB:.0f} MB, limit hits {cg['limit_hits']}, "
      f"OOM kills {cg['oom_kills']}; delivered {delivered:,.0f} of {n:,}, dead-lettered "
      f"{dead:,.0f}, sandbox accepted {accepted:,}; {r['run_committed_s']:.0f} s from the join "
      "to all committed")
h.check(cg["oom_kills"] == 0, f"{cg['oom_kills']} OOM kill(s)")
h.check(delivered == n and dead == 0, f"delivered {delivered:,.0f}, dead-lettered {dead:,.0f} "
        f"of {n:,}")
h.check(accepted >= n, f"the sandbox accepted {accepted:,} of {n:,}")
h.check(cg["peak"] < LIMIT, f"cgroup peak {cg['peak']:,} bytes reached the limit {LIMIT:,}")
# 40% of the limit for the events' data, plus the baseline, the prefetch's
# overshoot and the allocator's slack: about 45% measured; well under 60%
# unless what is held is miscounted again (before the fix: OOM-killed).
h.check(cg["peak"] <= LIMIT * 60 // 100,
        f"cgroup peak {cg['peak'] / MB:.0f} MB over 60% of the limit: held memory miscounted?")
# The bound was tested when the held bytes reached it: FILLED of it, where
# the nearest deadlines begin to go early (75%) for the large events. On a
# loaded machine (ctest -j) the held bytes may stop just under that mark
# while those early sends hold them there (CI once saw 76.5 of the 76.8 MB
# mark): then memory's early sends say the bound was working.
memory_early = bench.sent_early(mt)["memory"]
h.check(watch.max_held >= FILLED * bound or
        (memory_early > 0 and watch.max_held >= (FILLED - 0.05) * bound),
        f"held at most {watch.max_held / MB:.0f} MB, {memory_early:,.0f} actions sent early "
        f"for memory: the backlog did not reach the bound ({bound / MB:.0f} MB), nothing "
        "was tested")
h.check(r["exit_code"] == 0, f"bridge exit code {r['exit_code']}")
sandbox.stop()
kafka.stop()
h.log(f"PASS: {'small' if SMALL else 'large'} events held within the bound in a "
      f"{LIMIT // MB} MiB cgroup, all delivered and committed, no OOM kill")
