"""sessions.py: the session-shaped workload of issue 9 and the lookup models
it is judged by. Python 3 stdlib only (the curve's PNG needs matplotlib,
imported by draw_curve alone).

Real app traffic is sessions, not independent events: a user sends a
`start`, a dozen `track`s and `setUserAttributes` a few seconds apart, then a
`stop`, and thousands of sessions overlap. Sessions(...) generates such a
stream, stationary from its first second (sessions that began before it are
cut), as lines for `lb-kafkatool produce` in time order. It is produced at a
constant rate, so the Kafka timestamps, read back from the topic, are the
arrival times every figure is computed from.

The models, per (app, user), from Kafka timestamps:
- lower_bound(W): cover the user's timestamps greedily with windows of W
  (open at the first uncovered action, send when it closes, taking all that
  arrived by then); the number of windows is the fewest lookups any bridge
  can pay without making an action wait longer than W.
- fifo(linger): a FIFO packer, per app in arrival order; a request opens at
  its first action and closes after `linger` seconds, at max_actions, or
  when a new user would be the max_users+1st; each request's distinct users
  are billed.
"""
import bisect
import json
import math
import random


class Sessions:
    ACTIONS_MID = ("track", "track", "track", "setUserAttributes")

    def __init__(self, rate, duration, per_session, gap_s, apps, seed, tag="x"):
        """rate events/s for duration s; sessions of about per_session
        events (at least 2: start and stop) with exponential gaps of mean
        gap_s; apps weighted 1/k (a hot app and a long tail)."""
        rnd = random.Random(seed)
        self.rate, self.duration = rate, duration
        self.per_session, self.gap_s, self.napps = per_session, gap_s, apps
        cum = [sum(1.0 / k for k in range(1, i + 2)) for i in range(apps)]
        span = per_session * gap_s  # a session's mean length, about
        warm = 4 * span
        starts_per_s = rate / per_session
        events = []
        t = -warm
        sid = 0
        while True:
            t += rnd.expovariate(starts_per_s)
            if t >= duration:
                break
            sid += 1
            n = max(2, int(round(rnd.gauss(per_session, per_session / 3))))
            app = bisect.bisect_left(cum, rnd.random() * cum[-1])
            uid = f"{tag}{sid:07d}"
            at = t
            for k in range(n):
                if k:
                    at += rnd.expovariate(1.0 / gap_s)
                if at >= duration:
                    break
                if at >= 0:
                    events.append((at, app, uid, k, n))
        events.sort()
        out = []
        for i, (at, app, uid, k, n) in enumerate(events):
            act = "start" if k == 0 else "stop" if k == n - 1 else \
                self.ACTIONS_MID[(i + k) % len(self.ACTIONS_MID)]
            body = ""
            if act == "track":
                body = '"event":"Level Complete","params":{"level":%d},' % k
            elif act == "setUserAttributes":
                body = '"userAttributes":{"level":%d},' % k
            value = ('{"appId":"app_%02d","userId":"%s","action":"%s",%s'
                     '"eid":"%s%08d","seq":%d}' % (app, uid, act, body, tag, i, k))
            out.append(f"{uid}\t{value}\n")
        self.n = len(out)
        self.data = "".join(out).encode()


def arrivals(records):
    """{(app, user): [kafka ts in s, ...]} and {eid: kafka ts in ms} from
    lb-kafkatool consume -p records of the session topic."""
    per_user, ts_of = {}, {}
    for rec in records:
        v = json.loads(rec["value"])
        ts = rec["timestamp"]
        per_user.setdefault((v["appId"], v["userId"]), []).append(ts / 1000.0)
        ts_of[v["eid"]] = ts
    for lst in per_user.values():
        lst.sort()
    return per_user, ts_of


def lower_bound(per_user, budget_s):
    """Fewest lookups with no action waiting longer than budget_s."""
    total = 0
    for ts in per_user.values():
        opened = None
        for t in ts:
            if opened is None or t > opened + budget_s:
                total += 1
                opened = t
    return total


def fifo(per_user, linger_s, max_users=50, max_actions=500):
    """Lookups of the FIFO packer with a linger of linger_s (see above)."""
    per_app = {}
    for (app, user), ts in per_user.items():
        per_app.setdefault(app, []).extend((t, user) for t in ts)
    total = 0
    for evs in per_app.values():
        evs.sort()
        users, n, opened = set(), 0, None
        for t, u in evs:
            if opened is not None and (t > opened + linger_s or n == max_actions or
                                       (u not in users and len(users) == max_users)):
                total += len(users)
                users, n, opened = set(), 0, None
            if opened is None:
                opened = t
            users.add(u)
            n += 1
        total += len(users)
    return total


def waits_ms(sandbox_actions, ts_of):
    """Kafka timestamp -> first receipt by the API, per delivered eid."""
    first = {}
    for rec in sandbox_actions:
        eid = rec["action"].get("eid")
        if eid in ts_of and eid not in first:
            first[eid] = rec["recv_ms"] - ts_of[eid]
    return first


def pct(values, q):
    """The q-th percentile (0..100) of a sorted list; nan when empty."""
    if not values:
        return float("nan")
    return values[max(0, min(len(values) - 1, math.ceil(q / 100.0 * len(values)) - 1))]


def ensure_matplotlib():
    """Installs matplotlib from PyPI for the running interpreter when it is
    missing (draw_curve's import then fails if it could not be had)."""
    import importlib
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("matplotlib") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        importlib.invalidate_caches()


def draw_curve(rows, path, title):
    """rows: [{budget_s, bridge, lower, fifo, p99_s}] (lookups per action).
    Lookups per action against the budget (log x) for the bridge, the lower
    bound and FIFO; p99 wait on a second axis."""
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = [r["budget_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5.6), dpi=110)
    ax.plot(xs, [r["bridge"] for r in rows], "o-", color="tab:blue",
            label="leanbridge")
    ax.plot(xs, [r["lower"] for r in rows], "s--", color="tab:green",
            label="lower bound for the budget")
    ax.plot(xs, [r["fifo"] for r in rows], "^:", color="tab:red",
            label="FIFO packer, 0.5 s linger")
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel("wait budget, batch.max.wait.ms (s)")
    ax.set_ylabel("billable lookups per action")
    ax.set_ylim(0, max(1.05, max(r["fifo"] for r in rows) * 1.05))
    ax.grid(True, which="both", alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(xs, [r["p99_s"] for r in rows], "d-", color="tab:gray", alpha=0.7,
             label="leanbridge p99 wait (right axis)")
    ax2.set_yscale("log")
    ax2.set_ylabel("p99 wait, Kafka write -> API (s)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.13),
              ncol=2, fontsize=9, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
