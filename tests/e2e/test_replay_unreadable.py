"""`leanbridge replay` crosses a record batch of the dead-letter topic that
cannot be read, on a real Apache Kafka broker, instead of waiting for it for
ever. librdkafka 2.0.2 reports such a batch (here a gzip batch whose
payload is corrupted in the segment file, as in test_consumer_error.py) at
its first offset every 500 ms and never moves past it, so replay used to
run on (a warning every 500 ms) until stopped, and the dead letters after
the batch were never replayed by any run.

Three batches go to the dead-letter topic's one partition: 10 records, 10
in one gzip batch, 10 more. Asserted: a replay to a target topic ends by
itself with exit 0 within 60 s, replays the 20 readable records (their
keys, byte for byte), reports the 10 offsets it could not read (the
summary's "unreadable in the topic" and an error line naming them), and
commits past them: a second run reads nothing. Skips (77) without a
broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

DLQ, TARGET, GROUP = "runr.dlq", "runr.target", "runr"
N = 10


def dead_letters(keys):
    return [f"{k}\t{{\"dead\":\"{k}\"}}" for k in keys]


def count(out, what):
    for line in out.splitlines():
        if line.strip().startswith(what):
            return int(line.split()[-1])
    return None


def replay(bootstrap):
    p = h.replay(bootstrap, DLQ, GROUP, "--to", TARGET, wait=False)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        h.log(f"replay stderr (last): {err.decode()[-1500:]}")
        h.fail("replay did not end within 60 s: it waits at the unreadable batch")
    out, err = out.decode(), err.decode()
    h.log(f"replay -> exit {p.returncode}\n{out}{err[-1500:]}")
    return p.returncode, out, err


def main():
    kb.skip_unless_available(h.fail)
    before = [f"b{i}" for i in range(N)]
    bad = [f"x{i}" for i in range(N)]
    after = [f"a{i}" for i in range(N)]
    with kb.Broker() as broker:
        boot = broker.bootstrap
        broker.create_topic(DLQ, 1)
        broker.create_topic(TARGET, 1)
        h.produce(boot, DLQ, dead_letters(before))
        h.produce(boot, DLQ, dead_letters(bad), ["compression.codec=gzip"])
        h.produce(boot, DLQ, dead_letters(after))
        segs = sorted(glob.glob(os.path.join(broker.log_dirs, f"{DLQ}-0", "*.log")))
        h.check(len(segs) == 1, f"want one segment of {DLQ}-0, found {segs}")
        gz = [b for b in kb.record_batches(segs[0]) if b["attributes"] & 7 == 1]
        h.check(len(gz) == 1 and gz[0]["base"] == N and gz[0]["last"] == 2 * N - 1,
                f"want one gzip batch of offsets {N}..{2 * N - 1}, got {gz}")
        kb.corrupt_batch(segs[0], gz[0])

        rc, out, err = replay(boot)
        h.check(rc == 0, f"replay exit {rc}")
        h.check(count(out, "replayed") == 2 * N, f"replayed:\n{out}")
        h.check(count(out, "unreadable in the topic") == N, f"unreadable:\n{out}")
        h.check(f"offsets {N}..{2 * N - 1} (one record batch) cannot be read" in err,
                "no error line naming the unreadable offsets")
        got = [r["key"] for r in h.read_topic(boot, TARGET)]
        h.check(sorted(got) == sorted(before + after),
                f"target holds {len(got)} records: {sorted(got)[:5]}...")
        h.check(all(r["value"] == f"{{\"dead\":\"{r['key']}\"}}"
                    for r in h.read_topic(boot, TARGET)), "a replayed value changed")

        rc, out, err = replay(boot)
        h.check(rc == 0 and count(out, "records read") == 0,
                f"second run: exit {rc}, read {count(out, 'records read')}")
        h.check(len(h.read_topic(boot, TARGET)) == 2 * N, "the second run replayed again")
    print("1 passed, 0 failed")


main()
