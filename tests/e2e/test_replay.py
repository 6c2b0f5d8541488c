"""`leanbridge replay` end to end on a real Apache Kafka broker (KRaft, from
Maven Central), with the real bridge and the sandbox API:

  1. the bridge dead-letters poison (parse, validate) and API-rejected events
     (the sandbox answers success:false for two event names); values are
     pretty-printed JSON with tabs and newlines;
  2. `replay --dry-run` prints the exact counts by stage, app and message and
     produces and commits nothing;
  3. the sandbox is "fixed" for one event name; `replay --stage api` is killed
     (SIGKILL) right after its first checkpoint and rerun: every fixable
     event then reaches the API through the running bridge, nothing else is
     re-sent, and each replayed copy in the input topic has the original key,
     value (byte for byte) and timestamp, with leanbridge.replayed=1;
  4. the events still rejected are dead-lettered again after the stopping
     point: the rerun did not chase them;
  5. --max-replays 1 stops the records that failed twice (the bridge carries
     leanbridge.replayed into their dead letters), and skips dead letters
     that carry leanbridge.replayed=1 while replaying the others;
  6. a dead letter written cut (a 3,098-byte event, batch.max.bytes=1024,
     the producer's message.max.bytes=1500) goes back as the whole original
     read from its source offset (value byte for byte, key, timestamp and
     headers), and a bridge with the default batch.max.bytes applies it; a
     cut one whose original is gone is skipped and counted; a poison
     event's headers ride in its dead letters and back on its copies; and
     `--follow` with the defaults stops it after 3 replays.

Without a broker (no Java/Maven/network) it reports SKIPPED with the reason,
unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1, where that is a failure."""
import json
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness as h  # noqa: E402
import kafka_broker as kb  # noqa: E402

N_NORMAL, N_FIX, N_BAD = 3000, 6000, 40
TOPIC, DLQ, GROUP = "r.events", "r.dlq", "rbridge"


def replay(bootstrap, *opts, dlq=DLQ, wait=True, extra=()):
    return h.replay(bootstrap, dlq, GROUP, *opts, xs=extra, wait=wait)


def summary_counts(out):
    return {m.group(1).strip(): int(m.group(2))
            for m in re.finditer(r"^  ([a-z ,\-]+?)\s+(\d+)$", out, re.M)}


def dry_run_tally(out, title):
    """The "  by TITLE:" block as {name: count}."""
    block = out.split(f"  by {title}:\n", 1)[1]
    got = {}
    for line in block.split("\n"):
        m = re.match(r"^    +(\d+)  (.*)$", line)
        if not m:
            break
        got[m.group(2)] = int(m.group(1))
    return got


def events():
    """(records, expectations). Keys are user ids; values of the fixable
    events are pretty-printed with tab indents and hold escaped tabs and
    newlines too."""
    apps = sorted(h.APPS)
    records, fix, bad = [], {}, {}
    lines, normal = h.make_events(N_NORMAL, users=200, seed=11)
    for line in lines:
        k, _, v = line.partition("\t")
        records.append((k.encode(), v.encode()))
    for i in range(N_FIX + N_BAD):
        broken = i < N_FIX
        ev = {"appId": apps[i % len(apps)], "userId": f"u-{i}", "action": "track",
              "event": "Broken" if broken else "StillBroken", "eid": f"api-{i}",
              "note": "tab\there\nnewline"}
        value = json.dumps(ev, indent="\t").encode() if i % 3 == 0 else \
            json.dumps(ev).encode()
        (fix if broken else bad)[ev["eid"]] = (f"u-{i}".encode(), value, ev["appId"])
        records.append((f"u-{i}".encode(), value))
    parse = [(f"p-{i}".encode(), b"not json\tat all\n") for i in range(7)]
    validate = [(f"v-{i}".encode(), b'{"appId":"nope","userId":"x","action":"start"}')
                for i in range(5)]
    records += parse + validate
    return records, normal, fix, bad, len(parse), len(validate)


def read(bootstrap, topic):
    return h.read_topic(bootstrap, topic)


def cut_headers_follow(broker, bs, wd):
    """Step 6. @returns a one-line summary."""
    topic, dlq, group = "r6.events", "r6.dlq", "r6bridge"
    broker.create_topic(topic, 1)  # every partition gets a record to commit
    broker.create_topic(dlq, 1)
    hdrs = [("traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01"), ("x-producer", "svc-a")]
    ev = {"appId": "app_alpha", "userId": "u-big", "action": "track", "event": "Big",
          "eid": "big"}
    ev["pad"] = "p" * (3098 - len(json.dumps(ev, separators=(",", ":"))) - 9)
    big = json.dumps(ev, separators=(",", ":")).encode()
    h.check(len(big) == 3098, f"big event is {len(big)} bytes")
    h.kcat_produce(bs, topic, [(b"k-big", big), (b"k-poison", b"not json\tat all")], hdrs,
                   partition=0)
    sb = h.Sandbox(h.APPS, wd, name="sandbox6")
    b1 = h.Bridge(wd, h.bridge_settings(bs, sb, topic, dlq, group=group,
                                        batch_max_bytes="1024",
                                        **{"kafka.producer.message.max.bytes": "1500"}),
                  name="bridge6-small")
    h.wait_for(lambda: h.all_committed(bs, group, topic), 120, "step 6: first pass committed")
    h.check(b1.stop() == 0, f"bridge exit\n{b1.log_text()[-2000:]}")
    dead = {r["key"]: r for r in read(bs, dlq)}
    h.check(dead["k-big"]["headers"].get("leanbridge.value.truncated") == "3098",
            f"not written cut: {dead['k-big']['headers']}")
    for name, value in hdrs:
        h.check(dead["k-poison"]["headers"].get(name) == value,
                f"the poison dead letter lacks {name}: {dead['k-poison']['headers']}")
    h.kcat_produce(bs, dlq, [(b"k-gone", b"x" * 256)],
                   [("leanbridge.error.stage", "validate"), ("leanbridge.source.topic", topic),
                    ("leanbridge.source.partition", "0"), ("leanbridge.source.offset", "999999"),
                    ("leanbridge.value.truncated", "5000")])
    rc, out, _ = h.replay(bs, dlq, group, "--stage", "validate")
    c = summary_counts(out)
    h.check(rc == 0 and c.get("replayed") == 1 and c.get("cut, original replayed") == 1 and
            c.get("cut, original gone") == 1, f"cut replay: {c}")
    src = [r for r in read(bs, topic) if r["key"] == "k-big"]
    h.check(len(src) == 2, f"{len(src)} k-big records in the input, want the original and one copy")
    orig, copy = sorted(src, key=lambda r: r["offset"])
    h.check(copy["value"].encode() == big and copy["timestamp"] == orig["timestamp"] and
            copy["partition"] == orig["partition"], "the copy is not the whole original")
    for name, value in hdrs:
        h.check(copy["headers"].get(name) == value, f"the copy lacks {name}: {copy['headers']}")
    h.check(sorted(copy["headers"]) == sorted([n for n, _ in hdrs] + ["leanbridge.replayed"]),
            f"copy headers {copy['headers']}")

    b2 = h.Bridge(wd, h.bridge_settings(bs, sb, topic, dlq, group=group), name="bridge6")
    h.wait_for(lambda: any(a["action"].get("eid") == "big" for a in sb.accepted()), 120,
               "the whole big event applied")
    follower = h.replay(bs, dlq, group, "--follow", "--stage", "parse", "--group", "r6follow",
                        wait=False)
    poison = lambda: [r for r in read(bs, dlq) if r["key"] == "k-poison"]  # noqa: E731
    h.wait_for(lambda: len(poison()) >= 4, 120, "the poison event replayed 3 times")
    time.sleep(8)
    chain = poison()
    h.check(len(chain) == 4, f"{len(chain)} poison dead letters, want 1 + 3 replays")
    h.check(follower.poll() is None, "--follow exited by itself")
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    c = summary_counts(out.decode())
    h.check(follower.returncode == 0 and c.get("replayed") == 3 and
            c.get("skipped at --max-replays") == 1, f"--follow: {c}\n{err.decode()[-800:]}")
    for r in chain:
        for name, value in hdrs:
            h.check(r["headers"].get(name) == value, f"a poison dead letter lacks {name}")
    h.check(b2.stop() == 0, f"bridge exit\n{b2.log_text()[-2000:]}")
    sb.stop()
    return ("a cut dead letter replayed whole (3,098 bytes) and applied, a gone one skipped, "
            "headers carried, --follow stopped after 3 replays")


def main():
    kb.skip_unless_available(h.fail)
    with kb.Broker() as broker:
        bs = broker.bootstrap
        h.log(f"Kafka {broker.version} at {bs}")
        wd = h.workdir()
        broker.create_topic(TOPIC, 3)
        broker.create_topic(DLQ, 2)
        records, normal, fix, bad, n_parse, n_validate = events()

        # 1. Dead letters from a bridge whose API rejects two event names.
        sb1 = h.Sandbox(h.APPS, wd, name="rejecting",
                        extra=["--fail-event", "Broken", "--fail-event", "StillBroken"])
        s1 = h.bridge_settings(bs, sb1, TOPIC, DLQ, group=GROUP)
        b1 = h.Bridge(wd, s1, name="bridge-rejecting")
        h.kcat_produce(bs, TOPIC, records)
        h.wait_for(lambda: h.all_committed(bs, GROUP, TOPIC), 300, "the first pass committed")
        h.check(b1.stop() == 0, f"bridge exit\n{b1.log_text()[-2000:]}")
        sb1.stop()
        dead = read(bs, DLQ)
        n_dead = N_FIX + N_BAD + n_parse + n_validate
        h.check(len(dead) == n_dead, f"{len(dead)} dead letters, want {n_dead}")
        original = {}  # eid -> the input record as first produced
        for rec in read(bs, TOPIC):
            try:
                eid = json.loads(rec["value"]).get("eid", "")
            except ValueError:
                continue
            if eid.startswith("api-"):
                original[eid] = rec
        h.check(len(original) == N_FIX + N_BAD, f"{len(original)} api events in the input")

        # 2. The dry run: exact counts, nothing produced, nothing committed.
        rc, out, _ = replay(bs, "--dry-run")
        h.check(rc == 0, f"dry run exit {rc}")
        c = summary_counts(out)
        h.check(c.get("records read") == n_dead and c.get("would be replayed") == n_dead,
                f"dry run summary {c}")
        h.check(dry_run_tally(out, "stage") ==
                {"api": N_FIX + N_BAD, "parse": n_parse, "validate": n_validate},
                f"by stage: {dry_run_tally(out, 'stage')}")
        want_apps = {}
        for _, _, app in list(fix.values()) + list(bad.values()):
            want_apps[app] = want_apps.get(app, 0) + 1
        want_apps["(none)"] = n_parse + n_validate  # an unknown app is no app
        h.check(dry_run_tally(out, "app") == want_apps,
                f"by app: {dry_run_tally(out, 'app')} want {want_apps}")
        msgs = dry_run_tally(out, "message")
        h.check(msgs.get("Rejected event Broken") == N_FIX and
                msgs.get("Rejected event StillBroken") == N_BAD, f"by message: {msgs}")
        h.check(len(read(bs, TOPIC)) == len(records), "the dry run produced")
        h.check(not [r for r in h.committed(bs, "rbridge.replay", DLQ) if r[1] >= 0],
                "the dry run committed offsets")
        rc, out, _ = replay(bs, "--dry-run", "--stage", "api", "--message", "StillBroken")
        h.check(summary_counts(out).get("would be replayed") == N_BAD and
                summary_counts(out).get("skipped by filter") == n_dead - N_BAD,
                f"filtered dry run: {summary_counts(out)}")

        # 3. "Fix" the API for Broken; the bridge runs on; replay --stage api,
        # killed right after its first checkpoint, then rerun.
        sb2 = h.Sandbox(h.APPS, wd, name="fixed", extra=["--fail-event", "StillBroken"])
        b2 = h.Bridge(wd, h.bridge_settings(bs, sb2, TOPIC, DLQ, group=GROUP), name="bridge-fixed")
        p = replay(bs, "--stage", "api", wait=False, extra=["-X", "log.level=debug"])
        while True:
            line = p.stderr.readline().decode()
            h.check(line, "replay ended before its first checkpoint")
            if "checkpoint:" in line:
                break
        p.send_signal(signal.SIGKILL)
        p.wait()
        done_before = sum(off for _, off, _ in h.committed(bs, "rbridge.replay", DLQ) if off > 0)
        h.log(f"replay killed after committing {done_before} of {n_dead} dead letters")
        h.check(0 < done_before < n_dead, f"the kill was not mid-way ({done_before})")
        rc, out, _ = replay(bs, "--stage", "api")
        h.check(rc == 0, f"rerun exit {rc}")
        # It reads on from the checkpoint (plus what the killed run's
        # replays of StillBroken added to the DLQ before it started).
        reread = summary_counts(out).get("records read", 0)
        h.check(reread >= n_dead - done_before,
                f"the rerun read {reread}, want at least {n_dead - done_before}")
        h.wait_for(lambda: h.all_committed(bs, GROUP, TOPIC), 300, "the replayed events committed")
        accepted = {}
        for a in sb2.accepted():
            eid = a["action"].get("eid")
            accepted[eid] = accepted.get(eid, 0) + 1
        h.check(set(accepted) == set(fix),
                f"delivered after the fix: {len(accepted)} events, "
                f"{len(set(fix) - set(accepted))} fixable ones missing, "
                f"{sorted(set(accepted) - set(fix))[:5]} unexpected")
        dups = sum(n - 1 for n in accepted.values())
        h.log(f"replay delivered {len(accepted)} fixable events once or more "
              f"({dups} duplicates from the killed run's unacknowledged tail)")

        copies = {}
        for rec in read(bs, TOPIC):
            if "leanbridge.replayed" not in rec["headers"]:
                continue
            eid = json.loads(rec["value"])["eid"]
            copies.setdefault(eid, rec)
            o = original[eid]
            h.check(rec["value"] == o["value"], f"{eid}: value changed")
            h.check(rec["key"] == o["key"], f"{eid}: key changed")
            h.check(rec["timestamp"] == o["timestamp"],
                    f"{eid}: timestamp {rec['timestamp']} != {o['timestamp']}")
            h.check(rec["partition"] == o["partition"], f"{eid}: moved partition")
            h.check(rec["headers"]["leanbridge.replayed"] == "1", f"{eid}: {rec['headers']}")
        h.check(set(copies) == set(fix) | set(bad), f"{len(copies)} replayed copies")
        h.check(any("\t" in copies[e]["value"] and "\n" in copies[e]["value"] for e in copies),
                "no value with tabs and newlines was replayed")

        # 4. Rejected again, after the rerun's stopping point: the DLQ holds
        # new StillBroken dead letters (and no Broken one), which the rerun
        # did not chase; the next run finds them, and only them.
        by_event = {}
        for r in read(bs, DLQ):
            try:
                ev = json.loads(r["value"]).get("event")
            except ValueError:
                continue
            by_event[ev] = by_event.get(ev, 0) + 1
        h.check(by_event.get("Broken") == N_FIX and by_event.get("StillBroken", 0) > N_BAD,
                f"dead letters by event after the replay: {by_event}")
        rc, out, _ = replay(bs, "--dry-run")
        left = summary_counts(out).get("would be replayed", 0)
        h.check(rc == 0 and left > 0 and
                dry_run_tally(out, "message") == {"Rejected event StillBroken": left},
                f"after the stopping point: {dry_run_tally(out, 'message')}")
        # With the bridge carrying leanbridge.replayed into its dead letters,
        # --max-replays 1 stops the records that failed twice.
        rc, out, _ = replay(bs, "--max-replays", "1", "--dry-run")
        c = summary_counts(out)
        h.check(rc == 0 and c.get("skipped at --max-replays") == left and
                c.get("would be replayed") == 0, f"--max-replays 1 after two failures: {c}")
        h.check(b2.stop() == 0, f"bridge exit\n{b2.log_text()[-2000:]}")
        sb2.stop()

        # 5. --max-replays 1 on dead letters as the bridge writes a second
        # failure (with the input's leanbridge.replayed) and a first one.
        dlq2 = "r.dlq2"
        broker.create_topic(dlq2, 1)
        base = [("leanbridge.error.stage", "api"), ("leanbridge.source.topic", TOPIC),
                ("leanbridge.error.message", "Rejected event StillBroken")]
        h.kcat_produce(bs, dlq2, [(f"twice-{i}".encode(), b'{"n":1}') for i in range(4)],
                     base + [("leanbridge.replayed", "1")])
        h.kcat_produce(bs, dlq2, [(f"once-{i}".encode(), b'{"n":2}') for i in range(3)], base)
        rc, out, _ = replay(bs, "--max-replays", "1", dlq=dlq2)
        c = summary_counts(out)
        h.check(rc == 0 and c.get("replayed") == 3 and c.get("skipped at --max-replays") == 4,
                f"--max-replays 1: {c}")
        new = [r for r in read(bs, TOPIC) if r["key"].startswith(("once-", "twice-"))]
        h.check(sorted(r["key"] for r in new) == [f"once-{i}" for i in range(3)],
                f"--max-replays 1 replayed {sorted(r['key'] for r in new)}")
        h.check(all(r["headers"].get("leanbridge.replayed") == "1" for r in new), "header")
        step6 = cut_headers_follow(broker, bs, wd)
        version = broker.version
    print(f"\nreplay on real Kafka {version}: {n_dead} dead letters, dry run exact, "
          f"killed after {done_before} and rerun: {len(fix)} fixable events delivered "
          f"({dups} duplicates), {left} rejected again after the stopping point, "
          f"--max-replays skips "
          f"replayed ones; {step6}\n1 passed, 0 failed")


main()
