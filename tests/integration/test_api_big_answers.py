"""An answer larger than the bridge reads is not retried as it is: the API
answered, so it applied the request, and the same request would be
answered as large again, applied again each time until its retries ran
out, then dead-lettered (before the fix, 1,500 of the 2,000 events here,
after 5 applications each with retry.max.attempts=5). The request is split
instead, like one over the API's limits, until its halves' answers fit;
later requests of that app carry at most half as many actions, and the
bridge says which setting to lower. An answer is read up to 20% of
memory.limit.bytes over sender.max.inflight (16), at most 16 MiB, so the
answers in flight stay within the memory bound. The sandbox answers each
applied start with 250,000 bytes of variables (a real start returns the
user's variables): a request of 500 actions (~83 starts) gets ~21 MB, one
of 250 ~10 MB, one of 62 ~2.6 MB."""
import harness as h

TOPIC, DLQ = "events", "events.dlq"


def run(memory_limit, read_limit, inflight=16):
    wd = h.workdir()
    kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
    sandbox = h.Sandbox(h.APPS, wd, extra=["--start-vars-bytes", "250000"])
    lines, events = h.make_events(6000, users=60, seed=7)
    h.produce(kafka.bootstrap, TOPIC, lines)
    bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                            retry_max_attempts="5",
                                            memory_limit_bytes=str(memory_limit),
                                            sender_max_inflight=str(inflight)))
    h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 180,
               "committed offsets at the end of every partition")
    rc = bridge.stop()
    h.check(rc == 0, f"bridge exit code {rc}")
    dlq = h.read_topic(kafka.bootstrap, DLQ)
    h.check(not dlq, f"nothing should be dead-lettered, {len(dlq)} were: {dlq[:1]}")
    # Split requests were applied whole first: duplicates, never losses.
    counts = h.check_invariants(events, sandbox, dlq, allow_dup=True)
    h.check(counts["delivered"] == 6000, f"{counts}")
    sizes = sorted({r.get("actions") for r in sandbox.requests() if r.get("status") == 200})
    h.check(max(sizes) > 400, f"no request of over 400 actions was answered: sizes {sizes}")
    log = bridge.log_text()
    said = f"with over {read_limit} bytes, the most an answer is read to"
    h.check(said in log and "requests now carry at most" in log,
            f"the log should say the answers are over {read_limit} bytes and what to lower")
    h.check(log.count("the most an answer is read to") < 10, "the warning should be throttled")
    h.log(f"big answers, memory.limit.bytes {memory_limit}, sender.max.inflight "
          f"{inflight}: {counts}; request sizes {sizes}")
    kafka.stop()
    return counts, sandbox.requests()


# 1 GiB: 204.8 MiB of answers / 16 = 12.8 MiB each; 256 MiB: 3.2 MiB each.
big, _ = run(1 << 30, 13421772)
small, _ = run(256 << 20, 3355443)
h.check(small["duplicates"] > big["duplicates"],
        f"a lower read limit should split more: {small} vs {big}")
# One request at a time (16 MiB each): once an app's request of 500 was
# answered too large, its later requests carry at most 250 actions, so
# each app's actions reach the API twice at most once (before: every full
# request of 500 was answered too large, applied, and split again).
one, reqs = run(1 << 30, 16 << 20, inflight=1)
for app in h.APPS:
    mine = sorted((r for r in reqs if r.get("appId") == app), key=lambda r: r["start_ms"])
    cut = next((r for r in mine if r["actions"] > 250), None)
    h.check(cut, f"{app}: no request of over 250 actions")
    later = [r["actions"] for r in mine if r["start_ms"] > cut["reply_ms"] + 100]
    h.check(later and max(later) <= 250,
            f"{app}: requests after the first answer too large: {later}")
h.check(one["duplicates"] <= 500 * len(h.APPS), f"{one}")
print("1 passed, 0 failed")
