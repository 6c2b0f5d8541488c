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

Sized events (issue 23): track events padded to a value size, fixed or
heavy-tailed (mixed_size: lognormal body, Pareto tail, 100 B..64 KiB), as a
backlog (sized_events) or as a stream of sessions whose users rotate and
whose size distribution drifts over time (DriftingSessions, the soak's).
"""
import bisect
import heapq
import json
import math
import random
import string


class Sessions:
    ACTIONS_MID = ("track", "track", "track", "setUserAttributes")

    def __init__(self, rate, duration, per_session, gap_s, apps, seed, tag="x",
                 urgent=0.0, urgent_event="Purchase", returning=0.0, return_gap_s=10.0):
        """rate events/s for duration s; sessions of about per_session
        events (at least 2: start and stop) with exponential gaps of mean
        gap_s; apps weighted 1/k (a hot app and a long tail).

        urgent: the share of all actions that are `track` events named
        urgent_event (issue 25's urgent actions), drawn among the actions
        between a session's start and stop by a generator of their own
        (seed + 1), so the sessions, their times and users are the same with
        any share.

        returning: the share of sessions that are a returning user's: after
        its stop, a session is followed with this probability by another
        session of the same user (same app), starting an exponential
        return_gap_s (mean) after the stop; chains are geometric. New users
        start sessions at rate / per_session * (1 - returning) a second, so
        the event rate stays `rate`. A user's "seq" counts on across its
        sessions (the order check is per user)."""
        rnd = random.Random(seed)
        self.rate, self.duration = rate, duration
        self.per_session, self.gap_s, self.napps = per_session, gap_s, apps
        self.urgent_event, self.returning = urgent_event, returning
        cum = [sum(1.0 / k for k in range(1, i + 2)) for i in range(apps)]
        span = per_session * gap_s  # a session's mean length, about
        warm = 4 * span
        if returning:  # chains of sessions: their starts go back further
            warm += (span + return_gap_s) * math.ceil(4 / max(1e-9, 1 - returning))
        starts_per_s = rate / per_session * (1 - returning)
        events = []
        t = -warm
        sid = 0
        self.sessions = self.returned = 0
        while True:
            t += rnd.expovariate(starts_per_s)
            if t >= duration:
                break
            sid += 1
            n = max(2, int(round(rnd.gauss(per_session, per_session / 3))))
            app = bisect.bisect_left(cum, rnd.random() * cum[-1])
            uid = f"{tag}{sid:07d}"
            at, base, first = t, 0, True
            while at < duration:
                if not first:
                    n = max(2, int(round(rnd.gauss(per_session, per_session / 3))))
                kept = 0
                for k in range(n):
                    if k:
                        at += rnd.expovariate(1.0 / gap_s)
                    if at >= duration:
                        break
                    if at >= 0:
                        events.append((at, app, uid, k, n, base + k))
                        kept += 1
                if kept:
                    self.sessions += 1
                    self.returned += not first
                base += n
                first = False
                if not returning or rnd.random() >= returning:
                    break
                at += rnd.expovariate(1.0 / return_gap_s)
        events.sort()
        mids = [i for i, e in enumerate(events) if 0 < e[3] < e[4] - 1]
        k_urgent = min(len(mids), int(round(urgent * len(events))))
        marked = set(random.Random(seed + 1).sample(mids, k_urgent)) if k_urgent else set()
        out = []
        self.urgent = len(marked)
        self.stops = 0
        for i, (at, app, uid, k, n, sq) in enumerate(events):
            act = "start" if k == 0 else "stop" if k == n - 1 else \
                "track" if i in marked else \
                self.ACTIONS_MID[(i + k) % len(self.ACTIONS_MID)]
            self.stops += act == "stop"
            body = ""
            if i in marked:
                body = ('"event":"%s","value":%d.99,"params":{"item":"sku-%d"},'
                        % (urgent_event, 1 + i % 20, i % 97))
            elif act == "track":
                body = '"event":"Level Complete","params":{"level":%d},' % k
            elif act == "setUserAttributes":
                body = '"userAttributes":{"level":%d},' % k
            value = ('{"appId":"app_%02d","userId":"%s","action":"%s",%s'
                     '"eid":"%s%08d","seq":%d}' % (app, uid, act, body, tag, i, sq))
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


def actions_by_user(records):
    """{(app, user): [(kafka ts in s, action, event), ...]} in each user's
    order (Kafka timestamp, then partition offset: a user's events share a
    partition) and {eid: (app, action, event)}, from lb-kafkatool consume -p
    records of the session topic; event is None for actions without one.
    What the extended bound needs to know which actions close windows."""
    per_user, kind = {}, {}
    for rec in records:
        v = json.loads(rec["value"])
        ev = v.get("event")
        per_user.setdefault((v["appId"], v["userId"]), []).append(
            (rec["timestamp"], rec.get("offset", 0), v.get("action"), ev))
        kind[v["eid"]] = (v["appId"], v.get("action"), ev)
    return ({k: [(ts / 1000.0, a, e) for ts, _, a, e in sorted(lst)]
             for k, lst in per_user.items()}, kind)


def matcher(names):
    """A predicate on (action, event) for a list of closing names, as the
    bridge's batch.urgent and batch.session.end read them: an action name
    (the event's "action") or event:NAME (its "event")."""
    acts = {x for x in names if not x.startswith("event:")}
    evs = {x[len("event:"):] for x in names if x.startswith("event:")}
    return lambda action, event: action in acts or (event is not None and event in evs)


def _per_app(x, app):
    """x itself, or x[app] when x is a dict (a per-app setting; the key
    None is the default for apps it does not name)."""
    return x.get(app, x.get(None)) if isinstance(x, dict) else x


def lower_bound(per_user, budget_s):
    """Fewest lookups with no action waiting longer than budget_s (a number
    or {app: budget}); per_user values are timestamps or the
    (ts, action, event) tuples of actions_by_user."""
    return extended_lower_bound(per_user, budget_s, ())


def windows(per_user, budget_s, closes):
    """Issue 25's windows: per (app, user), greedy windows of the app's
    budget (budget_s: s, or {app: s}) that also close right after an action
    that `closes` names (a list of batch.urgent / batch.session.end entries,
    or {app: list}): open at the first uncovered action, close at open + W
    or at a closing action, whichever comes first. Yields (app, the
    window's timestamps, when it closes); per_user values are timestamps
    or the (ts, action, event) tuples of actions_by_user."""
    match = {}
    for (app, _), acts in per_user.items():
        w = _per_app(budget_s, app)
        if app not in match:
            match[app] = matcher(_per_app(closes, app) or ())
        closing = match[app]
        win, opened = [], None
        for x in acts:
            t, action, event = x if isinstance(x, tuple) else (x, None, None)
            if opened is not None and t > opened + w:
                yield app, win, opened + w
                win, opened = [], None
            if opened is None:
                opened = t
            win.append(t)
            if closing(action, event):
                yield app, win, t
                win, opened = [], None
        if win:
            yield app, win, opened + w


def extended_lower_bound(per_user, budget_s, closes, per_app=False):
    """Issue 25's bound: the number of windows (above), the fewest lookups
    with no action waiting longer than its app's budget nor past a closing
    action. With per_app, {app: windows} instead of the total."""
    out = {}
    for app, _, _ in windows(per_user, budget_s, closes):
        out[app] = out.get(app, 0) + 1
    return out if per_app else sum(out.values())


def model_waits(per_user, budget_s, closes):
    """The waits (s, sorted) that extended_lower_bound's windows give: each
    action waits until its window closes (open + W, or the closing action's
    arrival), as if sent at that instant with no linger, fetch or HTTP
    time: the policy's own wait, what a bridge's waits exceed by those."""
    return sorted(end - t for _, win, end in windows(per_user, budget_s, closes)
                  for t in win)


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


def draw_curve(rows, path, title, label="leanbridge"):
    """rows: [{budget_s, bridge, lower, fifo, p99_s}] (lookups per action),
    optionally off (lookups per action with the issue 25 policy off).
    Lookups per action against the budget (log x) for the bridge, the lower
    bound and FIFO; p99 wait on a second axis."""
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = [r["budget_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5.6), dpi=110)
    ax.plot(xs, [r["bridge"] for r in rows], "o-", color="tab:blue",
            label=label)
    if all("off" in r for r in rows):
        ax.plot(xs, [r["off"] for r in rows], "o:", color="tab:purple",
                label="leanbridge, urgent and session ends off")
    ax.plot(xs, [r["lower"] for r in rows], "s--", color="tab:green",
            label="lower bound for the budget" + (" and the policy" if label != "leanbridge"
                                                  else ""))
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


# --------------------------------------------------------------------------
# Sized events (issue 23)

MIN_SIZE, MAX_SIZE = 100, 65536
_POOL = []


def filler(n, at):
    """n (<= 64 Ki) characters of seeded random letters and digits starting
    at offset `at` of a fixed pool: values that compress about as badly as
    real payloads."""
    if not _POOL:
        rnd = random.Random(23)
        _POOL.append("".join(rnd.choices(string.ascii_letters + string.digits,
                                         k=2 * MAX_SIZE)))
    at %= MAX_SIZE
    return _POOL[0][at:at + n]


def mixed_size(rnd, median=500, tail=0.2):
    """A heavy-tailed value size: lognormal around `median` bytes (sigma 1),
    or with probability `tail` Pareto (alpha 1.1) from 4 KiB; clipped to
    100 B..64 KiB. The defaults give a mean of about 3.4 KiB, a median of
    about 700 B and 1.4% of values at the 64 KiB cap."""
    s = 4096 * rnd.paretovariate(1.1) if rnd.random() < tail else \
        rnd.lognormvariate(math.log(median), 1.0)
    return int(min(MAX_SIZE, max(MIN_SIZE, s)))


def track_value(app, uid, eid, seq, size, at=0):
    """A track event (JSON) of about `size` bytes: its params carry a
    string of filler (never under the event's own fields, ~110 bytes)."""
    pre = ('{"appId":"app_%02d","userId":"%s","action":"track","event":"Level Complete",'
           '"params":{"level":%d,"blob":"' % (app, uid, seq % 60))
    post = '"},"eid":"%s","seq":%d}' % (eid, seq)
    return pre + filler(max(0, size - len(pre) - len(post)), at) + post


def sized_events(n, size, users=20000, apps=4, seed=23, tag="z"):
    """n track events for lb-kafkatool produce (key TAB value NEWLINE), of
    `size` bytes each or, with size "mixed", of mixed_size() bytes; users
    drawn uniformly from `users`, user k in app k % apps, keyed by user,
    each user's events numbered (seq). Returns (data, [value sizes])."""
    rnd = random.Random(seed)
    seq = [0] * users
    out, sizes = [], []
    for i in range(n):
        u = rnd.randrange(users)
        sq = seq[u]
        seq[u] = sq + 1
        want = mixed_size(rnd) if size == "mixed" else int(size)
        uid = "u%05d" % u
        v = track_value(u % apps, uid, "%s%07d" % (tag, i), sq, want, at=i * 7919)
        sizes.append(len(v))
        out.append(f"{uid}\t{v}\n")
    return "".join(out).encode(), sizes


class DriftingSessions:
    """Session traffic as an endless stream in time order (for the soak):
    sessions start as a Poisson process (rate / per_session a second), each
    about per_session events with exponential gaps of mean gap_s (start,
    track, setUserAttributes, stop, as Sessions). A session's user is drawn
    from a window of `pool` user ids that slides by `pool` every
    turnover_s, so the users change over time; a user may come back while
    the window still holds it. Track events are padded to mixed_size(),
    whose median and tail share drift with period period_s (between about
    0.4x and 1.7x of their mean size; mean_bytes() is the average over a
    period). chunk(t1) returns the lines of the events before t1 s."""

    def __init__(self, rate, per_session, gap_s, apps, seed, pool=20000, turnover_s=300.0,
                 period_s=600.0, tag="d"):
        self.rnd = random.Random(seed)
        self.starts_per_s = rate / per_session
        self.per_session, self.gap_s, self.pool = per_session, gap_s, pool
        self.turnover_s, self.period_s, self.tag = turnover_s, period_s, tag
        self.cum = [sum(1.0 / k for k in range(1, i + 2)) for i in range(apps)]
        self.heap = []  # (at, n, app, uid, k, nk)
        # Sessions begin before 0 s (their events before it are dropped):
        # stationary from the first second, as Sessions.
        self.t_start = -4 * per_session * gap_s  # the next session's start
        self.seq = {}
        self.n = self.bytes = self.tracks = 0

    def params(self, t):
        """(median, tail share) of the track sizes at t s: from (250 B, 10%)
        at the trough to (1 KiB, 30%) at the crest, starting at the mean and
        rising."""
        phase = math.sin(2 * math.pi * t / self.period_s)
        return 500 * 2 ** phase, 0.2 + 0.1 * phase

    def mean_bytes(self, t=None, draws=40000):
        """Mean event size (key + value) at t s, or over a period: the track
        sizes by Monte Carlo, the other events ~130 bytes."""
        rnd = random.Random(1)
        track = sum(mixed_size(rnd, *self.params(rnd.random() * self.period_s
                                                  if t is None else t))
                    for _ in range(draws)) / draws
        share = (self.per_session - 2) / self.per_session * 0.75
        return share * (track + 9) + (1 - share) * 130

    def users_at(self, t):
        """The window of user ids sessions starting at t draw from."""
        base = int(t / self.turnover_s * self.pool)
        return base, base + self.pool

    def _sessions_until(self, t1):
        rnd = self.rnd
        while self.t_start < t1:
            at = self.t_start
            self.t_start += rnd.expovariate(self.starts_per_s)
            lo, hi = self.users_at(at)
            uid = "%s%08d" % (self.tag, rnd.randrange(lo, hi))
            app = bisect.bisect_left(self.cum, rnd.random() * self.cum[-1])
            nk = max(2, int(round(rnd.gauss(self.per_session, self.per_session / 3))))
            for k in range(nk):
                if k:
                    at += rnd.expovariate(1.0 / self.gap_s)
                heapq.heappush(self.heap, (at, self.n + len(self.heap), app, uid, k, nk))

    def chunk(self, t1, limit=None):
        """The lines (bytes) of every event before t1 s, after the last
        chunk's, up to `limit` events in all."""
        self._sessions_until(t1)
        out = []
        rnd = self.rnd
        while self.heap and self.heap[0][0] < t1 and (limit is None or self.n < limit):
            at, _, app, uid, k, nk = heapq.heappop(self.heap)
            if at < 0:
                continue
            sq = self.seq.get(uid, 0)
            self.seq[uid] = sq + 1
            i = self.n
            eid = "%s-%09d" % (self.tag, i)
            act = "start" if k == 0 else "stop" if k == nk - 1 else \
                Sessions.ACTIONS_MID[(i + k) % len(Sessions.ACTIONS_MID)]
            if act == "track":
                v = track_value(app, uid, eid, sq, mixed_size(rnd, *self.params(at)),
                                at=i * 7919)
                self.tracks += 1
            else:
                body = '"userAttributes":{"level":%d},' % k if act == "setUserAttributes" \
                    else ""
                v = ('{"appId":"app_%02d","userId":"%s","action":"%s",%s"eid":"%s","seq":%d}'
                     % (app, uid, act, body, eid, sq))
            line = f"{uid}\t{v}\n"
            self.n += 1
            self.bytes += len(line) - 2
            out.append(line)
            if not sq % 64 and len(self.seq) > 4 * self.pool:
                self._forget(at)
        return "".join(out).encode()

    def _forget(self, t):
        """Drops the sequence counters of users no window can draw again."""
        lo = self.users_at(t - 4 * self.per_session * self.gap_s)[0]
        self.seq = {u: s for u, s in self.seq.items() if int(u[len(self.tag):]) >= lo}
