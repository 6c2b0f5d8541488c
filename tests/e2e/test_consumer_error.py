"""A consumer error that carries an offset is dead-lettered, on a real
Apache Kafka broker: a corrupt record batch must leave a dead letter, and
the group's commit may pass over it only once that dead letter is written.

How the error is made. Three batches go to one partition: 40 events, then
30 events in one gzip-compressed batch (lb-kafkatool produce -X
compression.codec=gzip), then 40 events. With the broker running, 16 bytes
in the middle of the gzip batch's compressed payload are inverted in the
partition's segment file (the broker serves fetches from the file as it is
and does not check a batch's CRC on fetch; only a restart's log recovery
would). librdkafka 2.0.2 (Debian 12's, what the bridge links) then fails to
inflate it (src/rdkafka_msgset_reader.c, rd_kafka_msgset_reader_decompress)
and rd_kafka_consumer_poll() hands the application a message with
err = RD_KAFKA_RESP_ERR__BAD_COMPRESSION (-198), offset = the batch's base
offset (40), and rd_kafka_message_errstr() =
  "Decompression (codec 0x1) of message at 40 of N bytes failed:
   Local: Invalid compressed data"
(N: the batch's compressed payload size, checked below with kcat on the
same librdkafka before the bridge runs).

What librdkafka 2.0.2 does after it (measured with a probe consumer, and
read in its source): it does NOT move past the batch. The failed batch
leaves the partition's fetch position at the batch's base offset (no
message of it was read, msetr_next_offset is not set on that error path),
the fetcher backs off (fetch.error.backoff.ms, 500 ms) and fetches the same
batch again: the same error, same offset, every 500 ms, for ever; the
events after the batch are never handed out. A position inside the batch
gives the same error at its base offset again (the broker returns the
whole batch that holds the offset; measured on a batch of offsets 5..14:
a consumer assigned at 6, or at 14, gets the error at 5 every 500 ms);
only a position past its last offset (15 there, 70 here) reads on. So no
offset of the batch, nor any after it, is ever handed out as a message, and
the consumer alone never gets past it: the bridge has to dead-letter it
once (not once per refetch) and move its position past the batch itself;
the error does not say where the batch ends (N is the compressed size, not
the record count). Today's bridge only logs the error (a warning every
500 ms) and stays there: no dead letter, the commit stays at 40, the 40
later events are never delivered.
(The other source of such errors, check.crcs=true, is no way to test it:
librdkafka 2.0.2 reports the CRC failure with the batch's base offset but
then skips to a wrong position, rd_kafka_buf_skip_to(rkbuf, crc_len) with a
length for a position, a known upstream defect left unfixed there, and
reads garbage as the next batch: here an "Unsupported Message(Set) MagicByte -42 at offset
8547854311295708173" error followed by an offset reset. The bridge does not
set check.crcs.)

What is asserted:
  - the 40 events before are delivered and committed (offset 40) while the
    dead-letter topic does not exist yet (the broker does not auto-create
    topics, so the dead letter cannot be acknowledged); for 15 s then the
    group's committed offset never goes past 40;
  - the dead-letter topic is created: within 90 s a dead letter with stage
    consumer_error appears, and every committed offset read before it
    appeared is at most 40 (the commit is read first, then the topic: a
    commit past the batch must find its dead letter already there);
  - exactly one consumer_error dead letter (not one per refetch), with an
    empty key and value, leanbridge.error.message = librdkafka's error
    text and the batch's offsets (40..69), leanbridge.source.topic /
    .partition / .offset = cerr.events, 0, 40; no other dead letter;
  - leanbridge_actions_dead_lettered_total{stage="consumer_error"} = 1;
  - the 40 events after the batch are delivered and the group commits to
    the end of the partition (110); the harness's invariants hold.
Skips (77) without a broker, unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

TOPIC, DLQ, GROUP = "cerr.events", "cerr.dlq", "cerr"
N_BEFORE, N_BAD, N_AFTER = 40, 30, 40
HOLD_S = 15
STAGE = "consumer_error"
SERIES = f'leanbridge_actions_dead_lettered_total{{stage="{STAGE}"}}'
GZIP = 1  # record batch attributes & 7


def corrupt_gzip_batch(broker):
    """Inverts 16 bytes in the middle of the one gzip batch's compressed
    payload, in place in the live segment file. Returns the batch."""
    segs = sorted(glob.glob(os.path.join(broker.log_dirs, f"{TOPIC}-0", "*.log")))
    h.check(len(segs) == 1, f"want one segment of {TOPIC}-0, found {segs}")
    bs = kb.record_batches(segs[0])
    h.log("segment " + os.path.basename(segs[0]) + ": " + ", ".join(
        f"[{b['base']}..{b['last']}] attrs {b['attributes']:#x}" for b in bs))
    h.check(bs and bs[0]["base"] == 0 and bs[-1]["last"] == N_BEFORE + N_BAD + N_AFTER - 1
            and all(a["last"] + 1 == b["base"] for a, b in zip(bs, bs[1:])),
            "the batches do not cover offsets 0..109 contiguously")
    gz = [b for b in bs if b["attributes"] & 7 == GZIP]
    h.check(len(gz) == 1 and gz[0]["base"] == N_BEFORE and gz[0]["count"] == N_BAD
            and gz[0]["last"] == N_BEFORE + N_BAD - 1,
            f"want one gzip batch of offsets {N_BEFORE}..{N_BEFORE + N_BAD - 1}, got {gz}")
    h.check(all(b["attributes"] & 7 == 0 for b in bs if b is not gz[0]),
            "the events before and after are not all in uncompressed batches")
    gz[0]["payload_len"] = kb.corrupt_batch(segs[0], gz[0])
    h.log(f"inverted 16 bytes in the middle of the gzip batch's {gz[0]['payload_len']}-byte "
          "payload")
    return gz[0]


def kcat_from(bootstrap, offset):
    return subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", TOPIC, "-p", "0",
                           "-o", str(offset), "-e", "-q", "-f", "%o %s\n"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def committed(bootstrap):
    rows = h.committed(bootstrap, GROUP, TOPIC)
    h.check(len(rows) == 1, f"committed: {rows}")
    return rows[0][1], rows[0][2]


def dlq_records(broker):
    """The dead-letter topic's records, [] while it does not exist."""
    if DLQ not in broker.topics():
        return []
    return h.read_topic(broker.bootstrap, DLQ)


def stage_of(r):
    return r["headers"].get("leanbridge.error.stage")


def main():
    kb.skip_unless_available(h.fail)
    wd = h.workdir()
    lines, events = h.make_events(N_BEFORE + N_BAD + N_AFTER, users=20, seed=17)
    before, bad, after = (events[:N_BEFORE], events[N_BEFORE:N_BEFORE + N_BAD],
                          events[N_BEFORE + N_BAD:])
    # No auto-creation: the dead-letter topic is created only after the hold.
    with kb.Broker(extra_props={"auto.create.topics.enable": "false"}) as broker:
        boot = broker.bootstrap
        broker.create_topic(TOPIC, 1)
        h.produce(boot, TOPIC, lines[:N_BEFORE])
        h.produce(boot, TOPIC, lines[N_BEFORE:N_BEFORE + N_BAD], ["compression.codec=gzip"])
        h.produce(boot, TOPIC, lines[N_BEFORE + N_BAD:])
        gz = corrupt_gzip_batch(broker)
        base = gz["base"]
        want_msg = (f"Decompression (codec 0x1) of message at {base} of {gz['payload_len']} "
                    "bytes failed: Local: Invalid compressed data")

        # The corruption is what librdkafka (kcat, the same 2.0.2) reports,
        # and the events after the batch are intact past it.
        p = kcat_from(boot, base)
        h.log(f"kcat -o {base}: exit {p.returncode}: {p.stderr.decode().strip()[-300:]}")
        h.check(p.returncode != 0 and want_msg in p.stderr.decode(),
                f"kcat from offset {base} did not fail with '{want_msg}'")
        p = kcat_from(boot, gz["last"] + 1)
        got = p.stdout.decode().splitlines()
        h.check(p.returncode == 0 and len(got) == N_AFTER,
                f"kcat from offset {gz['last'] + 1}: exit {p.returncode}, {len(got)} events, "
                f"want {N_AFTER}: {p.stderr.decode()[-300:]}")

        sandbox = h.Sandbox(h.APPS, wd)
        port = h.free_port()
        bridge = h.Bridge(wd, h.bridge_settings(boot, sandbox, TOPIC, DLQ, group=GROUP,
                                                metrics_listen=f"127.0.0.1:{port}"))

        def delivered():
            return {a["action"]["eid"] for a in sandbox.actions()} if os.path.exists(
                sandbox.log_path) else set()

        def warnings():
            return [ln for ln in bridge.log_text().splitlines() if "Decompression" in ln]

        # The dead letter cannot be acknowledged: its topic does not exist.
        want_before = {e["eid"] for e in before}
        h.wait_for(lambda: want_before <= delivered(), 90, f"the {N_BEFORE} events before")
        h.wait_for(lambda: committed(boot)[0] >= base, 60, f"the commit of offset {base}")
        t0 = time.monotonic()
        while time.monotonic() - t0 < HOLD_S:
            c, _ = committed(boot)
            h.check(c <= base, f"committed offset {c} is past the corrupt batch at {base} "
                    f"while its dead letter cannot be written (no topic {DLQ})")
            h.check(bridge.alive(), f"the bridge exited: {bridge.log_text()[-2000:]}")
            time.sleep(1)
        h.log(f"hold: {HOLD_S} s without {DLQ}: committed {committed(boot)[0]}, "
              f"{len(delivered() & {e['eid'] for e in after})}/{N_AFTER} after-events "
              f"delivered, {len(warnings())} consumer error lines logged")

        # Now it can: the commit passes the batch only once the dead letter
        # is there (commit read first, then the topic).
        broker.create_topic(DLQ, 1)
        deadline, found, c = time.monotonic() + 90, [], None
        while time.monotonic() < deadline:
            c, _ = committed(boot)
            found = [r for r in dlq_records(broker) if stage_of(r) == STAGE]
            h.check(c <= base or found, f"committed offset {c} is past the corrupt batch at "
                    f"{base} and no {STAGE} dead letter is in {DLQ}")
            if found:
                break
            time.sleep(1)
        if not found:
            w = warnings()
            h.fail(f"no dead letter with stage {STAGE} in {DLQ} within 90 s of its creation "
                   f"(the corrupt batch {TOPIC}[0] offsets {base}..{gz['last']}): "
                   f"committed offset {c}, {SERIES} = {h.metric(port, SERIES)}, "
                   f"{len(delivered() & {e['eid'] for e in after})}/{N_AFTER} events after "
                   f"the batch delivered, dead letters in {DLQ}: "
                   f"{len(dlq_records(broker))}; the bridge logged the error "
                   f"{len(w)} time(s): {w[-1] if w else '-'}")
        h.log(f"dead letter: {found[0]}")

        want_after = {e["eid"] for e in after}
        h.wait_for(lambda: want_after <= delivered(), 90,
                   f"the {N_AFTER} events after the corrupt batch")
        h.wait_for(lambda: h.all_committed(boot, GROUP, TOPIC), 60,
                   "the commit of the partition's end")
        h.check(committed(boot) == (N_BEFORE + N_BAD + N_AFTER,) * 2,
                f"committed {committed(boot)}")
        dlq = dlq_records(broker)
        ours = [r for r in dlq if stage_of(r) == STAGE]
        h.check(len(ours) == 1, f"{len(ours)} {STAGE} dead letters, want exactly 1 "
                f"(one per corrupt batch, not one per refetch)")
        h.check(len(dlq) == 1, f"other dead letters: {[r for r in dlq if r not in ours][:3]}")
        r, hd = ours[0], ours[0]["headers"]
        h.check(r["key"] in (None, "") and r["value"] in (None, ""),
                f"key {r['key']!r} and value {r['value']!r}, want both empty")
        # The record says what was lost: the error and the batch's offsets,
        # found by moving the position (the error does not say them).
        want = {"leanbridge.source.topic": TOPIC, "leanbridge.source.partition": "0",
                "leanbridge.source.offset": str(base), "leanbridge.error.stage": STAGE,
                "leanbridge.error.message": f"{want_msg}; offsets {base}..{gz['last']} "
                                            "(one record batch) could not be read"}
        bad_hd = {k: (hd.get(k), v) for k, v in want.items() if hd.get(k) != v}
        h.check(not bad_hd, f"dead letter headers (got, want): {bad_hd}")
        n = h.metric(port, SERIES)
        h.check(n == 1, f"{SERIES} = {n}, want 1")
        counts = h.check_invariants(before + after, sandbox, [])
        got = delivered()
        h.check(not got & {e["eid"] for e in bad}, "an event of the corrupt batch delivered")
        h.check(bridge.stop() == 0, f"bridge exit code: {bridge.log_text()[-2000:]}")
        h.check("SECRET" not in bridge.log_text(), "a client key in the bridge's log")
        sandbox.stop()
        h.log(f"consumer error dead-lettered: {counts}")
    print("1 passed, 0 failed")


main()
