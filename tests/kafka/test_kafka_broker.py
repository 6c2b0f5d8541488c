#!/usr/bin/env python3
"""Self-test of the real-broker harness, and the evidence that Debian's
librdkafka 2.0.2 (through kcat) works with the chosen Kafka release:
produce (idempotent, lz4), consume, a consumer group that commits, two group
members sharing a topic, headers, and a broker restart keeping data and port.

    python3 tests/kafka/test_kafka_broker.py          # unittest, verbose
    LEANBRIDGE_KAFKA_VERSION=3.9.2 python3 tests/kafka/test_kafka_broker.py

SKIPPED with the reason when no broker can be had (no Java/Maven/network),
unless LEANBRIDGE_REQUIRE_REAL_KAFKA=1, where that is a failure.
"""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_broker as kb  # noqa: E402

_REASON = None


def setUpModule():
    global _REASON
    _REASON = kb.unavailable_reason()
    if _REASON and kb.real_kafka_required():
        raise RuntimeError(f"{kb.REQUIRE_ENV}=1 but no real Kafka broker: {_REASON}")


class RealBrokerTest(unittest.TestCase):
    broker = None

    @classmethod
    def setUpClass(cls):
        if _REASON:
            raise unittest.SkipTest(f"real Kafka unavailable: {_REASON}")
        cls.broker = kb.Broker().start()
        print(f"\n# Kafka {cls.broker.version} on {cls.broker.bootstrap} "
              f"(metadata after {cls.broker.ready_after_s:.1f} s)", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        if cls.broker:
            cls.broker.stop()

    def test_1_librdkafka_compat(self):
        fails = kb.smoke(self.broker)
        self.assertEqual(fails, [], "\n".join(fails))

    def test_2_create_topic_and_end_offsets(self):
        self.broker.create_topic("harness.t", partitions=5)
        self.assertEqual(self.broker.topics().get("harness.t"), 5)
        p = subprocess.run(["kcat", "-P", "-b", self.broker.bootstrap, "-t", "harness.t",
                            "-K:"], input="".join(f"u{i}:x\n" for i in range(50)),
                           text=True, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sum(self.broker.end_offsets("harness.t").values()), 50)

    def test_3_restart_keeps_data_and_port(self):
        self.broker.create_topic("harness.r", partitions=2)
        subprocess.run(["kcat", "-P", "-b", self.broker.bootstrap, "-t", "harness.r", "-K:"],
                       input="a:1\nb:2\nc:3\n", text=True, check=True, timeout=60)
        before = self.broker.end_offsets("harness.r")
        bootstrap = self.broker.bootstrap
        self.broker.restart(downtime_s=1)
        self.assertEqual(self.broker.bootstrap, bootstrap)
        self.assertEqual(self.broker.end_offsets("harness.r"), before)
        self.broker.restart(graceful=False)  # SIGKILL, like a crash
        self.assertEqual(self.broker.end_offsets("harness.r"), before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
