"""The commit made at shutdown is the last word on every partition, even
one whose offset did not change since a commit sent without waiting: that
earlier commit may still be on its way and fail, and nothing retries it
once the bridge has stopped. Here the broker answers the commit of the
last events 1.5 s late with an error, and SIGTERM comes meanwhile. The
shutdown commit, sent on the same connection, is answered right after it. Before
the fix the shutdown commit left the partition out (unchanged since the
commit on its way), the late error went unseen, and the group stayed at
the events before: all of them done again by the next owner."""
import json

import harness as h

TOPIC, DLQ = "events", "events.dlq"
APP = sorted(h.APPS)[0]


def events(first, n):
    """n events of one user: one request carries them all, and one commit
    their offsets."""
    return ["u\t" + json.dumps({"appId": APP, "userId": "u", "action": "track",
                                "event": "E", "eid": f"e{i}"}, separators=(",", ":"))
            for i in range(first, first + n)]


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 1, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
port = h.free_port()
settings = h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                             metrics_listen=f"127.0.0.1:{port}")
settings["kafka.consumer.auto.commit.interval.ms"] = "100"
# librdkafka's group debug log says when a commit is sent
settings.update({"kafka.debug": "cgrp", "log.level": "debug"})
SENT = "Committing offsets for"
bridge = h.Bridge(wd, settings)

h.produce(kafka.bootstrap, TOPIC, events(0, 20))
h.wait_for(lambda: h.all_committed(kafka.bootstrap, "lbtest", TOPIC), 60, "the first 20 committed")

# The next commit (the one carrying the next 20 events: nothing else has
# changed) is answered 1.5 s late with INVALID_COMMIT_OFFSET_SIZE (28),
# an error librdkafka does not retry.
kafka.command("late 8 1 1500 28")
sent = bridge.log_text().count(SENT)
h.produce(kafka.bootstrap, TOPIC, events(20, 20))
h.wait_for(lambda: h.metric(port, "leanbridge_actions_delivered_total") == 40, 30,
           "the next 20 delivered")
h.wait_for(lambda: bridge.log_text().count(SENT) > sent, 10, "their commit sent")
h.check(sandbox.accepted_count() == 40, "the sandbox accepted 40")
h.check(bridge.stop() == 0, "exit 0")

rows = h.committed(kafka.bootstrap, "lbtest", TOPIC)
h.check(rows == [(0, 40, 40)], f"the group's offset after the shutdown: {rows}, not 40")
h.log("the shutdown commit covered the partition whose last commit failed late")
print("1 passed, 0 failed")
