"""The Grafana dashboard (docker/grafana/leanbridge.json) and the alert rules
(docker/prometheus/alerts.yml) against the metrics a running bridge really
exposes: a renamed or removed metric fails here, not on an operator's screen.

A bridge runs on librdkafka's mock cluster and the sandbox until it has
delivered, dead-lettered and reported consumer lag; its /metrics gives the
metric names (samples, plus every # TYPE family with a histogram's _bucket,
_sum and _count). Then:
  - every PromQL expression of the dashboard (panel targets and template
    variable queries) names at least one metric, and every leanbridge_*
    name in it is exposed;
  - every expression parses: they are written, with Grafana's variables
    substituted, into a rule file that `promtool check rules` must accept;
  - every leanbridge_* name in alerts.yml is exposed;
  - the dashboard is sound: a uid, unique panel ids, each panel on the
    provisioned datasource's uid (docker/grafana/provisioning)."""
import json
import os
import re
import subprocess
import urllib.request

import harness as h

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(ROOT, "docker", "grafana", "leanbridge.json")
ALERTS = os.path.join(ROOT, "docker", "prometheus", "alerts.yml")
DATASOURCE = os.path.join(ROOT, "docker", "grafana", "provisioning", "datasources",
                          "prometheus.yml")
TOPIC, DLQ = "events", "events.dlq"

METRIC = re.compile(r"\b(leanbridge_[A-Za-z0-9_]+|up)\b(?!\s*\()")


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.read().decode()
    except OSError:
        return ""


def exposed_names(text):
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def base_name(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers outside label
    matchers and strings, not followed by "(" (functions)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    return set(METRIC.findall(bare))


def dashboard_exprs(dash):
    """(where, expr) for every panel target and template query."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} '{p['title']}' {t['refId']}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q:
            inner = re.match(r"label_values\((.*),\s*\w+\)$", q)
            out.append((f"variable ${v['name']}", inner.group(1) if inner else q))
    return out


def grafana_to_promql(expr):
    return (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            .replace("$instance", ".*"))


wd = h.workdir()
kafka = h.MockKafka({TOPIC: 2, DLQ: 1})
sandbox = h.Sandbox(h.APPS, wd)
lines, events = h.make_events(500, users=50, seed=21)
h.produce(kafka.bootstrap, TOPIC, lines + ["bad\tnot json"])
port = h.free_port()
bridge = h.Bridge(wd, h.bridge_settings(kafka.bootstrap, sandbox, TOPIC, DLQ,
                                        metrics_listen=f"127.0.0.1:{port}",
                                        kafka_statistics_interval_ms=1000))


def ready():
    t = scrape(port)
    return ("leanbridge_consumer_lag{" in t and 'stage="parse"} 1' in t and
            re.search(r"^leanbridge_actions_delivered_total [1-9]", t, re.M) and t)


text = h.wait_for(ready, 120, "deliveries, a dead letter and consumer lag in /metrics")
exposed = exposed_names(text)
h.log(f"/metrics exposes {len(exposed)} names")
h.check(bridge.stop() == 0, f"bridge exit code\n{bridge.log_text()[-2000:]}")

with open(DASHBOARD) as f:
    dash = json.load(f)
exprs = dashboard_exprs(dash)
h.check(len(exprs) >= 20, f"only {len(exprs)} expressions found in the dashboard")
missing, used = [], set()
for where, expr in exprs:
    names = metric_names(expr)
    h.check(names, f"{where}: no metric name in {expr!r}")
    for n in names:
        used.add(base_name(n))
        if n == "up" or n in exposed:
            continue
        missing.append(f"{where}: {n}")
h.check(not missing, "the dashboard uses metrics the bridge does not expose:\n  " +
        "\n  ".join(missing))

# Every expression parses: promtool checks them as recording rules.
rules = os.path.join(wd, "dashboard-rules.yml")
with open(rules, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (_, expr) in enumerate(exprs):
        f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(grafana_to_promql(expr))}\n")
p = subprocess.run(["promtool", "check", "rules", rules], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, timeout=60)
h.check(p.returncode == 0, f"promtool rejects a dashboard expression:\n{p.stdout.decode()}")

# The alert rules name only exposed metrics too.
with open(ALERTS) as f:
    alert_exprs = re.findall(r"^\s+expr: (\|\n(?:\s{10,}.*\n)+|.*\n)", f.read(), re.M)
h.check(len(alert_exprs) >= 9, f"{len(alert_exprs)} alert expressions found")
for expr in alert_exprs:
    for n in metric_names(expr):
        h.check(n == "up" or n in exposed, f"alerts.yml uses {n}, not exposed by the bridge")

# Sound structure, on the provisioned datasource.
with open(DATASOURCE) as f:
    ds_uid = re.search(r"^\s+uid: (\S+)$", f.read(), re.M).group(1)
ids = [p["id"] for p in dash["panels"]]
h.check(dash.get("uid") and dash.get("title"), "dashboard uid and title")
h.check(len(ids) == len(set(ids)), f"duplicate panel ids {ids}")
for p in dash["panels"]:
    h.check("gridPos" in p, f"panel {p['id']} has no gridPos")
    if p["type"] != "row":
        uids = {p["datasource"]["uid"]} | {t["datasource"]["uid"] for t in p["targets"]}
        h.check(uids == {ds_uid}, f"panel {p['id']} uses datasource {uids}, not {ds_uid}")
h.check("SECRET" not in text, "a client key in /metrics")
print(f"dashboard: {len(exprs)} expressions over {len(used)} metrics, all exposed; "
      f"{len(alert_exprs)} alert "
      f"expressions; promtool parses them all\n1 passed, 0 failed")
