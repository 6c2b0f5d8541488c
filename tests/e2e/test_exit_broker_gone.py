"""Issue 24, defect 5: the exit bound holds with the broker gone. On a real
Apache Kafka broker the bridge holds events (a 30 s budget) and has just
finished more (tombstones, done at once, not yet committed) when the broker
goes and the bridge gets SIGTERM right after: the broker killed (SIGKILL:
connections refused) or frozen (SIGSTOP: connections open, nothing
answers, as behind a network partition). Its shutdown commits what is done and leaves the group, and
each of those waits for a broker that will not answer: the bridge must
still exit within the exit bound it printed at startup (`exit bound N ms`,
what the compose file's stop_grace_period and the chart's
terminationGracePeriodSeconds are sized from). Also with the tightest
bound (no drain, no wait for the API: 10 s) and SIGTERM 1.5 s after the
broker froze, when requests to it are on the wire with no answer to come:
librdkafka's destroy then waits for them to time out (about 40 s). Skips (77) without a broker,
unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1."""
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

TOPIC, DLQ, PARTS = "gone.events", "gone.dlq", 4


# The tightest bound: no drain, no wait for the API: the 10 s margin alone;
# and librdkafka's default session timeout (45 s), which its requests to the
# group's coordinator wait for.
TIGHT = {"shutdown_timeout_ms": 0, "api_timeout_ms": 1, "api_timeout_hold_ms": 0,
         "kafka_consumer_session_timeout_ms": 45000,
         "kafka_consumer_max_poll_interval_ms": 300000}


def run(mode):
    """mode: killed, frozen (SIGTERM right after), or frozen-mid (SIGTERM
    1.5 s after, with the tightest bound: requests to the broker, a
    heartbeat at least, are then on the wire with no answer to come)."""
    wd = h.workdir()
    broker = kb.Broker().start()
    try:
        broker.create_topic(TOPIC, PARTS)
        broker.create_topic(DLQ, 1)
        sandbox = h.Sandbox(h.APPS, wd, name=f"sandbox-{mode}")
        port = h.free_port()
        bridge = h.Bridge(wd, h.bridge_settings(
            broker.bootstrap, sandbox, TOPIC, DLQ, group="gone",
            metrics_listen=f"127.0.0.1:{port}", batch_max_wait_ms=30000,
            **(TIGHT if mode == "frozen-mid" else {})), name=f"bridge-{mode}")
        h.wait_for(lambda: h.metric(port, "leanbridge_partitions_assigned") == PARTS, 90,
                   "the assignment")
        m = re.search(r"exit bound (\d+) ms", bridge.log_text())
        h.check(m is not None, "no 'exit bound N ms' in the startup log")
        bound_s = int(m.group(1)) / 1000
        lines, _ = h.make_events(300, users=100, seed=3, tombstones=300)
        h.produce(broker.bootstrap, TOPIC, lines)
        h.wait_for(lambda: h.metric(port, "leanbridge_events_consumed_total") == 600, 60,
                   "600 events consumed")
        more = [f"late-{i}\t\\N" for i in range(100)]
        h.produce(broker.bootstrap, TOPIC, more)
        h.wait_for(lambda: h.metric(port, "leanbridge_events_consumed_total") == 700, 60,
                   "the last 100 consumed")
        if mode == "killed":
            broker.shutdown(graceful=False)
        else:
            broker._signal(signal.SIGSTOP)
            if mode == "frozen-mid":
                time.sleep(1.5)
        t0 = time.monotonic()
        bridge.proc.send_signal(signal.SIGTERM)
        try:
            rc = bridge.proc.wait(timeout=bound_s + 60)
        except Exception:
            rc = None
        took = time.monotonic() - t0
        h.log(f"broker {mode}, SIGTERM: exit code {rc} after {took:.1f} s "
              f"(exit bound {bound_s:.0f} s)\n{bridge.log_text()[-2000:]}")
        h.check(rc is not None, f"broker {mode}: the bridge had not exited "
                f"{bound_s + 60:.0f} s after SIGTERM")
        h.check(took <= bound_s + 2, f"broker {mode}: exit after {took:.1f} s, over the "
                f"exit bound {bound_s:.0f} s")
        return took, bound_s
    finally:
        if mode.startswith("frozen") and broker.proc:
            broker._signal(signal.SIGCONT)
        broker.stop()


def main():
    kb.skip_unless_available(h.fail)
    res = {mode: run(mode) for mode in ("killed", "frozen", "frozen-mid")}
    h.log("exit after SIGTERM with the broker gone: " + ", ".join(
        f"{mode} {took:.1f} s of {bound:.0f} s" for mode, (took, bound) in res.items()))
    print("1 passed, 0 failed")


main()
