"""Replay never corrupts, never loops forever, and keeps headers.

  - the issue's reproduction: batch.max.bytes=1024 and
    kafka.producer.message.max.bytes=1500 with one 3,098-byte event: its
    dead letter (stage validate) is written cut. `leanbridge replay --stage
    validate` sends back the whole original from its source offset
    (byte-identical value, same key, timestamp and headers), so a bridge with
    the default batch.max.bytes applies it;
  - an event whose key and value are small but whose headers make its dead
    letter too large is written cut too, saying how many headers it left
    out (leanbridge.headers.dropped), and replay sends back the original
    with them (before, the record looked whole and its copy went back
    without the original's headers);
  - a cut dead letter whose original is gone (its offset is past the end) is
    skipped and counted, never produced;
  - a poison event's headers (trace context) are in its dead letter, beside
    the leanbridge.* ones, and back on its replayed copy;
  - replay runs with the bridge's own settings: a producer limit that cut
    a dead letter does not stop its original going back (replay writes to
    the input topics, where only the broker's limit applies);
  - `--follow` with the defaults stops a permanently failing record after
    3 replays (26 dead letters in 20 s before).
"""
import json
import signal
import time

import harness as h

EV, DLQ = "ev", "ev.dlq"
HDRS = [("traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01"), ("x-producer", "svc-a")]


def count(out, what):
    for line in out.splitlines():
        if line.strip().startswith(what):
            return int(line.split()[-1])
    return None


def by_key(records, key):
    return [r for r in records if r["key"] == key]


wd = h.workdir()
kafka = h.MockKafka({EV: 1, DLQ: 1})
bs = kafka.bootstrap
sandbox = h.Sandbox(h.APPS, wd)

big_ev = {"appId": "app_alpha", "userId": "u-big", "action": "track", "event": "Big",
          "eid": "big", "params": {"seq": 0}}
big_ev["pad"] = "p" * (3098 - len(json.dumps(big_ev, separators=(",", ":"))) - 9)
BIG = json.dumps(big_ev, separators=(",", ":")).encode()
h.check(len(BIG) == 3098, f"big event is {len(BIG)} bytes")
h.kcat_produce(bs, EV, [(b"k-big", BIG), (b"k-poison", b"not json at all")], HDRS, partition=0)
HEAVY = b'{"appId":"app_unknown","userId":"u-heavy","action":"track"}'
HEAVY_HDRS = HDRS + [("x-big", "b" * 2000)]
h.kcat_produce(bs, EV, [(b"k-heavy", HEAVY)], HEAVY_HDRS, partition=0)
lines, events = h.make_events(200, users=20, seed=33)
h.produce(bs, EV, lines)

# 1. The first bridge: the big event's dead letter is written cut.
b1 = h.Bridge(wd, h.bridge_settings(bs, sandbox, EV, DLQ, batch_max_bytes="1024",
                                    **{"kafka.producer.message.max.bytes": "1500"}),
              name="bridge1")
h.wait_for(lambda: h.all_committed(bs, "lbtest", EV), 90, "first bridge: offsets committed")
h.check(b1.stop() == 0, "first bridge exit code")
dlq = h.read_topic(bs, DLQ)
cut = by_key(dlq, "k-big")
h.check(len(cut) == 1, f"{len(cut)} dead letters of the big event")
cut = cut[0]
h.check(cut["headers"].get("leanbridge.value.truncated") == "3098", f"not cut: {cut['headers']}")
h.check(cut["headers"].get("leanbridge.error.stage") == "validate", f"{cut['headers']}")
heavy = by_key(dlq, "k-heavy")
h.check(len(heavy) == 1, f"{len(heavy)} dead letters of the heavy-headed event")
heavy = heavy[0]
h.check(heavy["headers"].get("leanbridge.headers.dropped") == str(len(HEAVY_HDRS)),
        f"no mark of the dropped headers: {heavy['headers']}")
h.check(heavy["value"].encode() == HEAVY and "x-big" not in heavy["headers"],
        f"heavy dead letter: {heavy}")
poison = by_key(dlq, "k-poison")
h.check(len(poison) == 1, f"{len(poison)} dead letters of the poison event")
for name, value in HDRS:
    h.check(poison[0]["headers"].get(name) == value,
            f"poison dead letter lacks the original header {name}: {poison[0]['headers']}")
h.check(poison[0]["headers"].get("leanbridge.error.stage") == "parse", f"{poison[0]['headers']}")
src = [r for r in h.read_topic(bs, EV) if r["key"] == "k-big"][0]

# 2. A cut dead letter whose original is gone: its offset is past the end.
h.kcat_produce(bs, DLQ, [(b"k-gone", b"x" * 256)],
               [("leanbridge.error.stage", "validate"), ("leanbridge.source.topic", EV),
                ("leanbridge.source.partition", "0"), ("leanbridge.source.offset", "999999"),
                ("leanbridge.value.truncated", "5000")], partition=0)

# Replay runs with the bridge's configuration, whose producer limit is why
# the big one was cut: the original goes back to its input topic all the
# same (before, 'Broker: Message size too large' stopped every run there).
rc, out, err = h.replay(bs, DLQ, "lbtest", "--stage", "validate",
                        xs=("-X", "kafka.producer.message.max.bytes=1500"))
h.check(rc == 0, f"replay exit {rc}")
h.check(count(out, "replayed") == 2, f"replayed:\n{out}")
h.check(count(out, "cut, original replayed") == 2, f"refetched:\n{out}")
h.check(count(out, "cut, original gone") == 1, f"gone:\n{out}")
ev = h.read_topic(bs, EV)
copies = [r for r in ev if "leanbridge.replayed" in r["headers"]]
h.check(len(copies) == 2, f"{len(copies)} replayed copies, want 2 (never a cut or gone one)")
heavy_copy = [r for r in copies if r["key"] == "k-heavy"]
h.check(len(heavy_copy) == 1 and heavy_copy[0]["value"].encode() == HEAVY,
        f"heavy copy: {heavy_copy}")
for name, value in HEAVY_HDRS:
    h.check(heavy_copy[0]["headers"].get(name) == value,
            f"the heavy copy lacks header {name}: {list(heavy_copy[0]['headers'])}")
c = [r for r in copies if r["key"] == "k-big"][0]
h.check(c["value"].encode() == BIG, f"copy value is {len(c['value'])} bytes, not the original")
h.check(c["timestamp"] == src["timestamp"], f"copy timestamp {c['timestamp']} != {src['timestamp']}")
for name, value in HDRS:
    h.check(c["headers"].get(name) == value, f"copy lacks header {name}: {c['headers']}")
h.check(not any(k.startswith("leanbridge.") and k != "leanbridge.replayed" for k in c["headers"]),
        f"leanbridge.* headers on the copy: {c['headers']}")
h.check(c["headers"]["leanbridge.replayed"] == "1", f"{c['headers']}")

# 3. A bridge with the default batch.max.bytes applies the whole event;
# meanwhile --follow with the defaults replays the poison event, which
# fails again each time, and stops after 3 replays.
b2 = h.Bridge(wd, h.bridge_settings(bs, sandbox, EV, DLQ), name="bridge2")
h.wait_for(lambda: any(a["action"].get("eid") == "big" for a in sandbox.accepted()), 60,
           "the big event applied")
follower = h.replay(bs, DLQ, "lbtest", "--follow", "--stage", "parse", "--group", "follow",
                    wait=False)
h.wait_for(lambda: len(by_key(h.read_topic(bs, DLQ), "k-poison")) >= 4, 60,
           "the poison event replayed 3 times")
time.sleep(6)  # the loop ran at about one round a second
chain = by_key(h.read_topic(bs, DLQ), "k-poison")
h.check(len(chain) == 4, f"{len(chain)} dead letters of the poison event, want 4 (1 + 3 replays)")
h.check(follower.poll() is None, "--follow exited by itself")
follower.send_signal(signal.SIGTERM)
out, err = follower.communicate(timeout=60)
out = out.decode()
h.log(f"follow:\n{out}{err.decode()[-600:]}")
h.check(follower.returncode == 0, f"--follow exit {follower.returncode}")
h.check(count(out, "replayed") == 3, f"--follow replayed:\n{out}")
h.check(count(out, "skipped at --max-replays") == 1, f"--follow stopped:\n{out}")
for r in chain:
    for name, value in HDRS:
        h.check(r["headers"].get(name) == value, f"a dead letter of a replay lacks {name}: {r['headers']}")
counts = sorted(int(r["headers"].get("leanbridge.replayed", "0")) for r in chain)
h.check(counts == [0, 1, 2, 3], f"replay counts of the chain {counts}")
h.wait_for(lambda: h.all_committed(bs, "lbtest", EV), 60, "second bridge: offsets committed")
h.check(b2.stop() == 0, "second bridge exit code")
counts = h.check_invariants(events + [big_ev], sandbox, [], allow_dup=False)
h.log(f"replay cut: whole original applied, gone one skipped, follow stopped; {counts}")
print("1 passed, 0 failed")
