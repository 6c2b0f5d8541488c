"""test_chart.py: the Kubernetes kit (deploy/kubernetes/leanbridge), checked
without a cluster (none can start on these machines).

Helm (built once from the Go module proxy into a tools cache) lints the chart
and renders it with the default values and with every example values file;
checkov (from PyPI, into a venv in the same cache) scans each rendering with
no failed check allowed; and the invariants that matter to the bridge are
asserted on the rendered objects:
  - the pod's terminationGracePeriodSeconds exceeds the bridge's exit bound,
    as `leanbridge --check-config` computes it from the very environment
    the chart gives the container (a chart that asks for a shorter grace
    period fails to render);
  - that environment is one the real binary accepts (every LEANBRIDGE_*
    variable a known key with a valid value);
  - liveness on /healthz, readiness on /readyz, on the metrics port;
  - non-root, read-only root filesystem, no privilege escalation, all
    capabilities dropped, no service account token;
  - static membership: group.instance.id is the pod's name;
  - the apps (client keys) come from a Secret file, never a literal;
  - a PodDisruptionBudget, and the KEDA ScaledObject's query on the scaling
    signal the bridge exports.
Exit 77 (skipped) when helm or checkov cannot be had, except under CI=true,
where that fails. Ends with "N passed, N failed".

    python3 tests/kubernetes/test_chart.py --setup
only makes the tools (what a machine without the cache spends minutes on:
scripts/test.sh runs it beside the C build, not among the parallel tests)
and exits, 0 when both are there.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "deploy", "kubernetes", "leanbridge")
EXAMPLES = os.path.join(ROOT, "deploy", "kubernetes", "examples")
BUILD = os.environ.get("LB_BUILD_DIR", os.path.join(ROOT, "build"))
HELM_VERSION = "v4.3.2"
CHECKOV_VERSION = "3.3.30"
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                     "leanbridge-tools")
NAMESPACE = "streaming"

passed = failed = 0


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        log(f"ok   - {what}")
    else:
        failed += 1
        log(f"FAIL - {what}")
    return cond


def skip_or_fail(why):
    if os.environ.get("CI") == "true":
        log(f"FAIL - {why} (CI=true: a skip is a failure)")
        log("0 passed, 1 failed")
        sys.exit(1)
    log(f"SKIPPED: {why}")
    sys.exit(77)


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def ensure_helm():
    helm = os.path.join(CACHE, f"helm-{HELM_VERSION}", "helm")
    if os.access(helm, os.X_OK):
        return helm
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        skip_or_fail("no Go toolchain to build helm from the Go module proxy")
    log(f"# building helm {HELM_VERSION} from the Go module proxy (once per machine)")
    env = dict(os.environ, GOBIN=os.path.dirname(helm))
    p = run([go, "install", f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}"], env=env, cwd=tempfile.gettempdir())
    if p.returncode != 0 or not os.access(helm, os.X_OK):
        log(p.stdout[-3000:])
        skip_or_fail("helm could not be built")
    return helm


def ensure_checkov():
    venv = os.path.join(CACHE, f"checkov-{CHECKOV_VERSION}")
    checkov = os.path.join(venv, "bin", "checkov")
    if os.access(checkov, os.X_OK):
        return checkov
    log(f"# installing checkov {CHECKOV_VERSION} from PyPI into {venv}")
    p = run([sys.executable, "-m", "venv", venv])
    if p.returncode == 0:
        p = run([os.path.join(venv, "bin", "pip"), "install", "-q",
                 "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"])
    if p.returncode != 0 or not os.access(checkov, os.X_OK):
        log(p.stdout[-3000:])
        skip_or_fail("checkov could not be installed (python3-venv, PyPI)")
    return checkov


def load_yaml_docs(text):
    try:
        import yaml
    except ImportError:
        skip_or_fail("PyYAML is missing (Debian package python3-yaml)")
    return [d for d in yaml.safe_load_all(text) if d]


def render(helm, values_files=(), sets=()):
    args = [helm, "template", "lb", CHART, "--namespace", NAMESPACE]
    for v in values_files:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    return run(args)


def container_env(sts):
    """The container's environment as the kubelet would give it: literals,
    $(VAR) expanded from earlier variables, secrets replaced by stand-ins."""
    env = {}
    c = sts["spec"]["template"]["spec"]["containers"][0]
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)),
                                    str(e["value"]))
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = "lb-leanbridge-0"  # metadata.name of the first pod
        elif "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = "stand-in-secret"
    return env


def check_config(env, tmp):
    """Runs the real binary's --check-config on the chart's environment, with
    the mounted apps file replaced by a local one. Returns (rc, output)."""
    binary = os.path.join(BUILD, "leanbridge")
    if not os.access(binary, os.X_OK):
        return None, f"no binary at {binary}"
    env = dict(env)
    apps = os.path.join(tmp, "apps")
    with open(apps, "w") as f:
        f.write("app_x:stand-in-key\n")
    os.chmod(apps, 0o440)
    env["LEANBRIDGE_APPS"] = "@" + apps
    # TLS files mounted from Secrets: a self-signed certificate and its key
    # stand in (librdkafka loads them when --check-config makes a client).
    tls = [k for k in env if k.endswith("_LOCATION")]
    if tls:
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        p = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", "/CN=stand-in", "-keyout", key, "-out", cert])
        if p.returncode != 0:
            return None, f"openssl could not make a stand-in certificate: {p.stdout}"
        for k in tls:
            env[k] = key if "_KEY_" in k else cert
    p = run([binary, "--check-config"], env=dict(env, PATH="/usr/bin:/bin"))
    return p.returncode, p.stdout


def exit_bound_ms(output):
    m = re.search(r"exit bound:? (\d+) ms", output)
    return int(m.group(1)) if m else None


def invariants(name, docs, tmp):
    kinds = {d["kind"]: d for d in docs}
    sts = kinds.get("StatefulSet")
    if not check(sts is not None, f"{name}: a StatefulSet"):
        return
    for d in docs:
        check(d["metadata"].get("namespace") == NAMESPACE,
              f"{name}: {d['kind']} in the release namespace")
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = container_env(sts)

    rc, out = check_config(env, tmp)
    check(rc == 0, f"{name}: leanbridge --check-config accepts the chart's environment: "
          f"{out.strip()[-400:]}")
    bound = exit_bound_ms(out or "")
    if not check(bound is not None, f"{name}: --check-config prints the exit bound"):
        return
    grace = pod["terminationGracePeriodSeconds"]
    check(grace * 1000 > bound,
          f"{name}: terminationGracePeriodSeconds {grace} s > exit bound {bound} ms")

    port = c["ports"][0]["containerPort"]
    check(env.get("LEANBRIDGE_METRICS_LISTEN") == f"0.0.0.0:{port}",
          f"{name}: metrics.listen on the container port {port}")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness on /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness on /readyz")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        check(c[probe]["httpGet"]["port"] in ("metrics", port), f"{name}: {probe} on the metrics port")

    psc, csc = pod["securityContext"], c["securityContext"]
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
          f"{name}: runs as a non-root user")
    check(csc.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: every capability dropped")
    check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token")
    # A Service named leanbridge-* would inject LEANBRIDGE_*_SERVICE_HOST,
    # which the bridge refuses as an unknown variable (exit 2, a crash loop).
    check(pod.get("enableServiceLinks") is False, f"{name}: no service links in the environment")
    rc, out = check_config({**env, "LEANBRIDGE_SANDBOX_SERVICE_HOST": "10.0.0.5"}, tmp)
    check(rc != 0 and "LEANBRIDGE_SANDBOX_SERVICE_HOST" in out,
          f"{name}: (why) the bridge refuses an unknown LEANBRIDGE_ variable: {out[-200:]}")
    limit = memory_bytes(c.get("resources", {}).get("limits", {}).get("memory"))
    check(limit is not None and limit >= 1024 ** 3,
          f"{name}: a memory limit of at least 1Gi (the bridge sizes its pending bound "
          f"from it: {limit} bytes)")
    pending = env.get("LEANBRIDGE_PENDING_MAX_BYTES", "0")
    check(limit is not None and int(pending) < limit // 2,
          f"{name}: pending.max.bytes ({pending}, 0 = auto) leaves half the memory limit free")

    apps = env.get("LEANBRIDGE_APPS", "")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    apps_dir = os.path.dirname(apps[1:]) if apps.startswith("@") else None
    m = mounts.get(apps_dir)
    check(m is not None and m.get("readOnly") and "secret" in vols.get(m["name"], {}),
          f"{name}: the apps (client keys) are a read-only file from a Secret")
    if m is not None and "secret" in vols.get(m["name"], {}):
        mode = vols[m["name"]]["secret"].get("defaultMode", 0o644)
        check(mode & 0o007 == 0, f"{name}: the apps file is not readable by others (mode {mode:o})")

    if env.get("LEANBRIDGE_KAFKA_CONSUMER_GROUP_INSTANCE_ID") is not None:
        check(env["LEANBRIDGE_KAFKA_CONSUMER_GROUP_INSTANCE_ID"] == "lb-leanbridge-0",
              f"{name}: group.instance.id is the pod's name")
    pdb = kinds.get("PodDisruptionBudget")
    check(pdb is not None and pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow",
          f"{name}: a PodDisruptionBudget that lets unready members be evicted")
    so = kinds.get("ScaledObject")
    check((so is None) == ("replicas" in sts["spec"]),
          f"{name}: replicas set by the chart unless KEDA scales the StatefulSet")
    if so is not None:
        down = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        check(down["stabilizationWindowSeconds"] >= 300 and
              down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}],
              f"{name}: KEDA scales in one pod at a time after a quiet window: {down}")
        trig = so["spec"]["triggers"][0]
        check(trig["type"] == "prometheus" and
              "leanbridge_consume_delay_seconds" in trig["metadata"]["query"],
              f"{name}: KEDA scales on leanbridge_consume_delay_seconds")
        check(so["spec"]["scaleTargetRef"]["name"] == sts["metadata"]["name"],
              f"{name}: KEDA scales the StatefulSet")


def memory_bytes(quantity):
    """A Kubernetes memory quantity ("1Gi", "512M", "1073741824") in bytes,
    or None."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity or ""))
    if not m:
        return None
    scale = {None: 1, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
             "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4}
    return int(m.group(1)) * scale[m.group(2)]


def main():
    helm = ensure_helm()
    checkov = ensure_checkov()
    tmp = tempfile.mkdtemp(prefix="lbchart-")
    try:
        p = run([helm, "lint", "--strict", CHART, "--namespace", NAMESPACE])
        check(p.returncode == 0, "helm lint --strict" + ("" if p.returncode == 0 else ":\n" + p.stdout))

        cases = {
            "defaults": ([], []),
            "strimzi": ([os.path.join(EXAMPLES, "values-strimzi.yaml")], []),
            "keda+mtls": ([], ["keda.enabled=true", "kafka.mtls.userSecret=lb-user",
                               "kafka.tls.caSecret=my-cluster-cluster-ca-cert",
                               "kafka.staticMembership=false",
                               "config.batch\\.max\\.wait\\.ms=60000"]),
        }
        for name, (files, sets) in cases.items():
            p = render(helm, files, sets)
            if not check(p.returncode == 0, f"{name}: helm template" +
                         ("" if p.returncode == 0 else ":\n" + p.stdout)):
                continue
            docs = load_yaml_docs(p.stdout)
            invariants(name, docs, tmp)
            out = os.path.join(tmp, f"{name}.yaml")
            with open(out, "w") as f:
                f.write(p.stdout)
            s = run([checkov, "-f", out, "--framework", "kubernetes", "--skip-download",
                     "--compact", "--quiet"])
            fails = re.findall(r"Check: (CKV\w+)", s.stdout)
            check(s.returncode == 0 and not fails,
                  f"{name}: checkov finds nothing" + ("" if not fails else f": {sorted(set(fails))}\n{s.stdout[-2000:]}"))

        # A grace period at or under the exit bound does not render.
        p = render(helm, [], ["terminationGracePeriodSeconds=30"])
        check(p.returncode != 0 and "exit bound" in p.stdout,
              "a grace period under the exit bound fails to render")
        p = render(helm, [], ["terminationGracePeriodSeconds=120"])
        check(p.returncode == 0, "an explicit grace period above the exit bound renders")
        # The timeouts the grace period follows cannot come in through config:.
        for key in ("shutdown\\.timeout\\.ms", "api\\.timeout\\.ms", "metrics\\.listen"):
            p = render(helm, [], [f"config.{key}=60000"])
            check(p.returncode != 0 and "the grace period and the probes" in p.stdout,
                  f"config.{key} fails to render")
        # Raising the API timeout raises the computed grace period with it.
        p = render(helm, [], ["api.timeoutMs=90000"])
        if check(p.returncode == 0, "api.timeoutMs=90000 renders"):
            sts = [d for d in load_yaml_docs(p.stdout) if d["kind"] == "StatefulSet"][0]
            grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            check(grace * 1000 > 10000 + 90000 + 30000 + 10000,
                  f"the computed grace period follows the timeouts ({grace} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--setup"]:
        log(f"# helm at {ensure_helm()}, checkov at {ensure_checkov()}")
        sys.exit(0)
    sys.exit(main())
