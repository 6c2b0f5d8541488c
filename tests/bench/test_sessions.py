#!/usr/bin/env python3
"""Unit checks of sessions.py's models and workload on small hand-made
inputs (stdlib unittest, no Kafka, no bridge):

    python3 tests/bench/test_sessions.py
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessions as s  # noqa: E402


def rec(ts_ms, app, user, action, event=None, eid="e", offset=0):
    v = {"appId": app, "userId": user, "action": action, "eid": eid}
    if event is not None:
        v["event"] = event
    return {"timestamp": ts_ms, "offset": offset, "value": json.dumps(v)}


class Bound(unittest.TestCase):
    def test_plain_windows(self):
        # 0, 10, 30 | 31, 40 | 100: three windows of 30 s.
        pu = {("a", "u"): [0.0, 10.0, 30.0, 31.0, 40.0, 100.0]}
        self.assertEqual(s.lower_bound(pu, 30), 3)
        self.assertEqual(s.extended_lower_bound(pu, 30, ()), 3)

    def test_closing_action_ends_the_window(self):
        # start 0, track 5, Purchase 6 (closes) | track 7, stop 20 (closes) |
        # start 25: with both closing, three windows; urgent only, two
        # (0..6, then 7..37 holds 20 and 25); nothing closing, one.
        acts = [(0.0, "start", None), (5.0, "track", "Level Complete"),
                (6.0, "track", "Purchase"), (7.0, "track", "Level Complete"),
                (20.0, "stop", None), (25.0, "start", None)]
        pu = {("a", "u"): acts}
        self.assertEqual(s.extended_lower_bound(pu, 30, ["event:Purchase", "stop"]), 3)
        self.assertEqual(s.extended_lower_bound(pu, 30, ["event:Purchase"]), 2)
        self.assertEqual(s.extended_lower_bound(pu, 30, ["stop"]), 2)
        self.assertEqual(s.extended_lower_bound(pu, 30, []), 1)
        # A closing action at the window's first action closes it alone.
        self.assertEqual(s.extended_lower_bound({("a", "u"): [(0.0, "stop", None),
                                                              (1.0, "start", None)]},
                                                30, ["stop"]), 2)

    def test_action_name_is_not_an_event_name(self):
        # "Purchase" as an action name does not match an event, nor
        # event:track an action.
        pu = {("a", "u"): [(0.0, "track", "Purchase"), (1.0, "track", None)]}
        self.assertEqual(s.extended_lower_bound(pu, 30, ["Purchase"]), 1)
        self.assertEqual(s.extended_lower_bound(pu, 30, ["event:track"]), 1)
        self.assertEqual(s.extended_lower_bound(pu, 30, ["track"]), 2)

    def test_per_app_budgets_and_closes(self):
        pu = {("a0", "u"): [(0.0, "start", None), (6.0, "track", None),
                            (12.0, "stop", None)],
              ("a1", "v"): [(0.0, "start", None), (6.0, "track", None),
                            (12.0, "stop", None), (13.0, "start", None)]}
        got = s.extended_lower_bound(pu, {"a0": 5, "a1": 30}, {None: ["stop"]},
                                     per_app=True)
        self.assertEqual(got, {"a0": 3, "a1": 2})
        got = s.extended_lower_bound(pu, {"a0": 5, "a1": 30}, {"a0": ["stop"], None: []},
                                     per_app=True)
        self.assertEqual(got, {"a0": 3, "a1": 1})

    def test_model_waits(self):
        acts = [(0.0, "start", None), (5.0, "track", "Level Complete"),
                (6.0, "track", "Purchase"), (7.0, "track", "Level Complete"),
                (20.0, "stop", None), (40.0, "start", None)]
        pu = {("a", "u"): acts}
        # Nothing closing: 0..30 (0, 5, 6, 7, 20 wait until 30), 40..70.
        self.assertEqual(s.model_waits(pu, 30, []), sorted([30, 25, 24, 23, 10, 30]))
        # Purchase and stop close: 0..6, 7..20, 40..70.
        self.assertEqual(s.model_waits(pu, 30, ["event:Purchase", "stop"]),
                         sorted([6, 1, 0, 13, 0, 30]))
        self.assertEqual(len(s.model_waits(pu, 30, ["stop"])), len(acts))

    def test_actions_by_user_reads_the_values(self):
        recs = [rec(2000, "a", "u", "stop", eid="3", offset=7),
                rec(1000, "a", "u", "track", "Purchase", eid="2", offset=6),
                rec(1000, "a", "u", "start", eid="1", offset=5),
                rec(1500, "b", "w", "start", eid="4")]
        pu, kind = s.actions_by_user(recs)
        self.assertEqual(pu[("a", "u")], [(1.0, "start", None), (1.0, "track", "Purchase"),
                                          (2.0, "stop", None)])
        self.assertEqual(kind["2"], ("a", "track", "Purchase"))
        self.assertEqual(kind["4"], ("b", "start", None))


class Workload(unittest.TestCase):
    def parse(self, wl):
        out = []
        for line in wl.data.decode().splitlines():
            key, value = line.split("\t", 1)
            out.append((key, json.loads(value)))
        return out

    def test_urgent_share_leaves_the_rest_alone(self):
        base = s.Sessions(300, 20, 12, 4, 3, seed=5, tag="t")
        urg = s.Sessions(300, 20, 12, 4, 3, seed=5, tag="t", urgent=0.02)
        a, b = self.parse(base), self.parse(urg)
        self.assertEqual(len(a), len(b))
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        self.assertEqual(len(changed), urg.urgent)
        self.assertEqual(urg.urgent, round(0.02 * len(b)))
        for (_, x), (_, y) in changed:
            self.assertEqual((y["action"], y["event"]), ("track", "Purchase"))
            self.assertNotIn(x["action"], ("start", "stop"))
            self.assertEqual((x["userId"], x["seq"], x["eid"]), (y["userId"], y["seq"],
                                                                 y["eid"]))

    def test_returning_users_come_back_after_their_stop(self):
        wl = s.Sessions(300, 60, 8, 2, 3, seed=7, tag="r", returning=0.5, return_gap_s=5)
        ev = self.parse(wl)
        self.assertGreater(wl.returned, 0.3 * wl.sessions)
        last = {}
        starts_after_stop = 0
        for _, v in ev:
            u = v["userId"]
            if u in last:
                self.assertEqual(v["seq"], last[u][0] + 1, "seq counts on across sessions")
                starts_after_stop += v["action"] == "start" and last[u][1] == "stop"
            last[u] = (v["seq"], v["action"])
        self.assertGreater(starts_after_stop, 0)
        # The rate holds: within 10% of 300 events/s.
        self.assertLess(abs(wl.n / 60 - 300) / 300, 0.1)


if __name__ == "__main__":
    unittest.main()
