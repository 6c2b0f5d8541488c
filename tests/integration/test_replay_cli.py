"""`leanbridge replay` on librdkafka's mock cluster: what the real-broker test
(tests/e2e/test_replay.py) does not reach.

  - configuration and usage errors exit 2 and name the problem;
  - a produce that is never acknowledged (the target topic's broker down
    past message.timeout.ms) exits 1 and commits nothing; once the broker is
    back, a rerun replays every record (nothing lost);
  - a dead letter without leanbridge.source.topic is skipped and counted,
    unless --to gives it a target;
  - --follow replays dead letters written after its start, and SIGTERM ends
    it with exit 0 after committing them;
  - no client key appears in any output.
Two mock brokers: the dead-letter topic and the coordinator on broker 1, the
input topic's partitions on broker 2."""
import signal
import time

import harness as h

EV, DLQ, GROUP = "ev", "dlq", "rg"


def kcat_produce(bootstrap, topic, records, headers):
    h.kcat_produce(bootstrap, topic, records, headers, partition=0)


def replay(bootstrap, *opts, wait=True, xs=()):
    return h.replay(bootstrap, DLQ, GROUP, *opts, wait=wait,
                    xs=("-X", f"apps=app_alpha:{h.APPS['app_alpha']}", *xs))


def count(out, what):
    for line in out.splitlines():
        if line.strip().startswith(what):
            return int(line.split()[-1])
    return None


def committed(bootstrap):
    return {p: off for p, off, _ in h.committed(bootstrap, f"{GROUP}.replay", DLQ)}


def replayed_copies(bootstrap):
    return [r for r in h.read_topic(bootstrap, EV) if "leanbridge.replayed" in r["headers"]]


kafka = h.MockKafka({EV: 2, DLQ: 1}, brokers=2)
bs = kafka.bootstrap
kafka.command(f"leader {DLQ} 0 1")
for p in (0, 1):
    kafka.command(f"leader {EV} {p} 2")
kafka.command(f"coordinator {GROUP}.replay 1")
time.sleep(0.5)

# Configuration and usage errors: exit 2, with the reason.
for opts, xs, words in (
        ((), ("-X", "dlq.topic="), "dlq.topic"),
        (("--frobnicate",), (), "unrecognized option"),
        (("--dry-run", "--follow"), (), "--follow"),
        (("--to", DLQ), (), "--to"),
        (("--since", "2026-11-30", "--until", "2026-11-29"), (), "--since"),
        (("--max-replays", "0"), (), "--max-replays"),
        ((), ("-X", "kafka.no.such.property=1"), "no.such.property"),
        ((), ("-X", "batch.max.users=999"), "batch.max.users"),
        (("stray",), (), "unexpected argument")):
    rc, out, err = replay(bs, *opts, xs=xs)
    h.check(rc == 2 and words in err, f"{opts} {xs}: exit {rc}, {err[-300:]!r}")

# Dead letters: 20 with a source topic and partition, 4 without.
base = [("leanbridge.error.stage", "api"), ("leanbridge.error.message", "Rejected event X")]
for p in (0, 1):
    kcat_produce(bs, DLQ, [(f"k{p}-{i}".encode(), f'{{"n":{i},"p":{p}}}'.encode())
                           for i in range(10)],
                 base + [("leanbridge.source.topic", EV), ("leanbridge.source.partition", str(p))])
kcat_produce(bs, DLQ, [(f"orphan-{i}".encode(), b'{"orphan":1}') for i in range(4)], base)

# The input topic's broker is down: nothing is acknowledged, nothing committed.
kafka.command("broker-down 2")
t = time.time()
rc, out, err = replay(bs, xs=("-X", "kafka.producer.message.timeout.ms=3000"))
h.check(rc == 1 and "not acknowledged" in err, f"exit {rc} with the target down")
h.check(time.time() - t < 60, "the failed replay took too long to give up")
h.check(all(off < 0 for off in committed(bs).values()),
        f"a failed replay committed {committed(bs)}")
kafka.command("broker-up 2")

# Back up: the rerun replays all 20 to their partitions; the orphans are
# skipped and counted.
rc, out, err = replay(bs)
h.check(rc == 0, f"rerun exit {rc}")
h.check(count(out, "replayed") == 20 and count(out, "skipped, no target topic") == 4 and
        count(out, "records read") == 24, f"rerun summary:\n{out}")
copies = replayed_copies(bs)
h.check(len(copies) == 20, f"{len(copies)} copies in {EV}, want 20")
for r in copies:
    h.check(r["key"].startswith(f"k{r['partition']}-"), f"copy in the wrong partition: {r}")
    h.check(r["headers"]["leanbridge.replayed"] == "1", f"header: {r['headers']}")
h.check(committed(bs) == {0: 24}, f"committed {committed(bs)}, want {{0: 24}}")

# --to gives the orphans a target (a new group: the first one is past them).
rc, out, err = replay(bs, "--to", EV, "--group", "orphans", "--app", "app_none,")
h.check(rc == 2, "--app with an empty item must be refused")
rc, out, err = replay(bs, "--to", EV, "--group", "orphans", "--message", "Rejected")
h.check(rc == 0 and count(out, "replayed") == 24, f"--to summary:\n{out}")
h.check(len(replayed_copies(bs)) == 44, "--to did not produce 24 copies")

# --follow: new dead letters are replayed; SIGTERM ends it cleanly.
p = replay(bs, "--follow", wait=False)
time.sleep(1.5)
kcat_produce(bs, DLQ, [(b"late-0", b'{"late":0}'), (b"late-1", b'{"late":1}')],
             base + [("leanbridge.source.topic", EV), ("leanbridge.source.partition", "1")])
h.wait_for(lambda: len(replayed_copies(bs)) == 46, 60, "--follow to replay the late records")
h.check(p.poll() is None, "--follow exited by itself")
h.wait_for(lambda: committed(bs) == {0: 26}, 30, "--follow to commit the late records")
p.send_signal(signal.SIGTERM)
out, err = p.communicate(timeout=60)
h.check(p.returncode == 0, f"--follow after SIGTERM: exit {p.returncode}\n{err.decode()[-800:]}")
h.check(count(out.decode(), "replayed") == 2, f"--follow summary:\n{out.decode()}")

rc, out, err = replay(bs)
h.check(rc == 0 and count(out, "records read") == 0, "a caught-up group read records again")
kafka.stop()
print("replay CLI: usage errors exit 2; an unacknowledged produce exits 1 and commits "
      "nothing; the rerun replays all; orphans skipped or sent --to; --follow and SIGTERM\n"
      "1 passed, 0 failed")
