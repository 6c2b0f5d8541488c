#!/usr/bin/python3
"""Static checks of docker/Dockerfile and docker/docker-compose.yml that need
no Docker engine. Called by scripts/check-docker.sh; prints one "ok"/"FAIL"
line per check and exits non-zero if any failed.

  check_docker.py dockerfile docker/Dockerfile .dockerignore
  check_docker.py compose RENDERED.yml         (docker-compose config output)
  check_docker.py compose-fresh RENDERED.yml   (rendered without docker/.env)
  check_docker.py compose-monitoring RENDERED.yml (with --profile monitoring)
  check_docker.py compose-apps RENDERED.yml    (print sandbox and bridge apps)
  check_docker.py compose-env RENDERED.yml     (print the bridge's environment)
  check_docker.py compose-api-url RENDERED.yml (print its LEANBRIDGE_API_URL)
  check_docker.py sandbox-opts RENDERED.yml    (print the sandbox's --options)
  check_docker.py grace-vs-bound RENDERED.yml CHECK_CONFIG_OUTPUT
                      (the bridge's stop_grace_period exceeds the exit bound
                      that `leanbridge --check-config` printed)
  check_docker.py apt-packages docker/Dockerfile 0|last (a stage's apt packages)

The compose commands need PyYAML (Debian: python3-yaml, a dependency of
docker-compose); the Dockerfile commands use the standard library only.
"""

import re
import shlex
import sys

FAILS = 0


def check(ok, what, detail=""):
    global FAILS
    if ok:
        print(f"ok   - {what}")
    else:
        FAILS += 1
        print(f"FAIL - {what}{': ' + detail if detail else ''}")


# ---------------------------------------------------------------- Dockerfile

def instructions(path):
    """[(stage_index, INSTRUCTION, args)] with continuation lines joined and
    comments dropped."""
    out, buf, stage = [], "", -1
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.lstrip().startswith("#"):
                continue  # comment inside a continued instruction
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            ins, _, args = buf.strip().partition(" ")
            ins = ins.upper()
            if ins == "FROM":
                stage += 1
            out.append((stage, ins, args.strip()))
            buf = ""
    return out


def apt_packages(ins, stage):
    pkgs = []
    for st, i, args in ins:
        if st == stage and i == "RUN" and "apt-get install" in args:
            seg = args.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in seg.split() if not w.startswith("-")]
    return pkgs


def check_dockerfile(path, dockerignore):
    ins = instructions(path)
    args_default = {}
    for st, i, a in ins:
        if i == "ARG" and "=" in a and st == -1:
            k, v = a.split("=", 1)
            args_default[k] = v

    def expand(s):
        return re.sub(r"\$\{(\w+)\}", lambda m: args_default.get(m.group(1), m.group(0)), s)

    froms = [(st, expand(a)) for st, i, a in ins if i == "FROM"]
    check(len(froms) >= 2, "multi-stage build (2+ FROM)", f"{len(froms)} FROM")
    if not froms:
        return
    first = froms[0][1].split()
    check(len(first) == 3 and first[1].upper() == "AS" and first[2] == "build"
          and first[0].startswith("debian:bookworm"),
          "build stage is 'FROM debian:bookworm AS build'", froms[0][1])
    last_stage = froms[-1][0]
    last_from = froms[-1][1].split()[0]
    check(last_from.startswith("debian:bookworm") and last_from.endswith("-slim"),
          "runtime stage is debian:bookworm-slim", last_from)

    build_pkgs = set(apt_packages(ins, 0))
    need_build = {"build-essential", "cmake", "pkg-config", "librdkafka-dev",
                  "libcurl4-openssl-dev", "libjansson-dev", "libmicrohttpd-dev",
                  "libcmocka-dev", "python3"}
    check(need_build <= build_pkgs, "build stage installs the CI packages",
          f"missing {sorted(need_build - build_pkgs)}")
    run_pkgs = set(apt_packages(ins, last_stage))
    need_run = {"librdkafka1", "libcurl4", "libjansson4", "libmicrohttpd12",
                "ca-certificates"}
    check(need_run <= run_pkgs, "runtime stage installs the shared libraries",
          f"missing {sorted(need_run - run_pkgs)}")
    check(not [p for p in run_pkgs if p.endswith("-dev") or p in
               ("build-essential", "cmake", "gcc")],
          "runtime stage has no compilers or -dev packages", str(sorted(run_pkgs)))

    build_cmds = " ".join(a for st, i, a in ins if st == 0 and i == "RUN")
    check("-DCMAKE_BUILD_TYPE=Release" in build_cmds and "leanbridge-sandbox" in build_cmds
          and re.search(r"--target\s+leanbridge\b", build_cmds) is not None,
          "build stage: cmake Release build of leanbridge and leanbridge-sandbox")

    last = [(i, a) for st, i, a in ins if st == last_stage]
    copies = [a for i, a in last if i == "COPY"]
    for binary in ("leanbridge", "leanbridge-sandbox"):
        check(any(a.startswith("--from=build") and a.endswith(f"/usr/local/bin/{binary}")
                  for a in copies), f"runtime stage gets /usr/local/bin/{binary} from build")
    check(not [a for a in copies if "conf" in a or ".conf" in a or ".env" in a],
          "no config file or env file copied into the image (12-factor)", str(copies))

    users = [a for i, a in last if i == "USER"]
    user = users[-1].split(":")[0] if users else "root"
    check(bool(users) and user not in ("root", "0"), "runtime runs as a non-root USER",
          users[-1] if users else "no USER")

    hcs = [a for i, a in last if i == "HEALTHCHECK"]
    check(len(hcs) == 1 and "/healthz" in hcs[0] and "CMD" in hcs[0],
          "HEALTHCHECK against /healthz", str(hcs))
    if hcs and "curl" in hcs[0]:
        check("curl" in run_pkgs, "curl (used by the HEALTHCHECK) is installed")

    envs = " ".join(a for i, a in last if i == "ENV")
    check(re.search(r"LEANBRIDGE_METRICS_LISTEN=0\.0\.0\.0:9100\b", envs) is not None,
          "ENV LEANBRIDGE_METRICS_LISTEN=0.0.0.0:9100 by default")
    check(not re.search(r"LEANBRIDGE_(APPS|API_URL|KAFKA_BOOTSTRAP_SERVERS)=", envs),
          "no deployment-specific config baked into the image")

    eps = [a for i, a in last if i == "ENTRYPOINT"]
    check(eps == ['["/usr/local/bin/leanbridge"]'],
          'ENTRYPOINT ["/usr/local/bin/leanbridge"] (exec form)', str(eps))

    try:
        with open(dockerignore) as f:
            ign = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    except OSError:
        ign = []
    check(".git" in ign and "docker/.env" in ign and any(p.startswith("build") for p in ign),
          ".dockerignore keeps .git, build dirs and docker/.env out of the context",
          str(ign))


# ---------------------------------------------------------------- compose

def load(path):
    import yaml
    with open(path) as f:
        return yaml.safe_load(f)


def env_dict(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def cmd_list(svc, key="command"):
    c = svc.get(key) or []
    return shlex.split(c) if isinstance(c, str) else [str(x) for x in c]


def check_compose(path):
    doc = load(path)
    svcs = doc.get("services", {})
    for name in ("kafka", "kafka-init", "sandbox", "leanbridge"):
        check(name in svcs, f"service {name} defined")
    if not all(n in svcs for n in ("kafka", "kafka-init", "sandbox", "leanbridge")):
        return

    k = svcs["kafka"]
    ke = env_dict(k)
    check(str(k.get("image", "")).startswith("apache/kafka:"), "kafka uses the official "
          "apache/kafka image", k.get("image"))
    check(set(ke.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"},
          "kafka runs KRaft (broker,controller), no ZooKeeper")
    check("PLAINTEXT://kafka:9092" in ke.get("KAFKA_ADVERTISED_LISTENERS", ""),
          "kafka advertises kafka:9092 on the compose network")
    check(bool(k.get("healthcheck", {}).get("test")), "kafka has a healthcheck")

    ki = svcs["kafka-init"]
    dep = (ki.get("depends_on") or {}).get("kafka", {})
    check(isinstance(dep, dict) and dep.get("condition") == "service_healthy",
          "kafka-init waits for kafka to be healthy")
    script = " ".join(cmd_list(ki, "entrypoint") + cmd_list(ki))
    for topic, parts in (("leanbridge.events", 12), ("leanbridge.dlq", 3)):
        m = re.search(rf"--topic {re.escape(topic)} --partitions (\d+)", script)
        check(m is not None and int(m.group(1)) == parts and "--if-not-exists" in script,
              f"kafka-init creates {topic} with {parts} partitions (--if-not-exists)")
    check(str(ki.get("restart", "no")) in ("no", "False", "false"),
          "kafka-init is one-shot (restart: no)")

    sb = svcs["sandbox"]
    sc = cmd_list(sb)
    check("--bind" in sc and sc[sc.index("--bind") + 1] == "0.0.0.0",
          "sandbox listens on 0.0.0.0 inside the network (--bind 0.0.0.0)", str(sc))
    check("--apps" in sc and sc[sc.index("--apps") + 1] == "env:LEANBRIDGE_APPS"
          and env_dict(sb).get("LEANBRIDGE_APPS"),
          "sandbox knows the apps from its environment (--apps env:LEANBRIDGE_APPS), "
          "not its arguments")
    check(cmd_list(sb, "entrypoint")[:1] == ["/usr/local/bin/leanbridge-sandbox"],
          "sandbox runs /usr/local/bin/leanbridge-sandbox from the bridge image")

    lb = svcs["leanbridge"]
    b = lb.get("build") or {}
    check(isinstance(b, dict) and str(b.get("dockerfile", "")).endswith("docker/Dockerfile"),
          "leanbridge builds docker/Dockerfile", str(b))
    check("container_name" not in lb, "leanbridge has no container_name (scalable)")
    check(not lb.get("ports"), "leanbridge publishes no host port (scalable)")
    deps = lb.get("depends_on") or {}
    check(isinstance(deps, dict) and
          deps.get("kafka-init", {}).get("condition") == "service_completed_successfully",
          "leanbridge starts after kafka-init completed successfully")
    check("sandbox" in deps, "leanbridge depends on the sandbox")
    check(isinstance(deps, dict) and
          deps.get("kafka", {}).get("condition") == "service_healthy",
          "leanbridge depends on kafka (stopped after the bridges, which commit as they stop)")
    env = env_dict(lb)
    for key, want in (("LEANBRIDGE_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
                      ("LEANBRIDGE_INPUT_TOPICS", "leanbridge.events"),
                      ("LEANBRIDGE_DLQ_TOPIC", "leanbridge.dlq"),
                      ("LEANBRIDGE_API_URL", "http://sandbox:8080/api?action=multi")):
        check(env.get(key) == want, f"leanbridge {key}={want}", env.get(key))
    check(bool(env.get("LEANBRIDGE_APPS")), "leanbridge gets LEANBRIDGE_APPS")
    for name in ("kafka", "kafka-init", "sandbox", "leanbridge"):
        check(not svcs[name].get("profiles"),
              f"{name} has no profile (a plain `up` starts it)")
    check(env.get("LEANBRIDGE_METRICS_LISTEN", "").endswith(":9100"),
          "leanbridge serves /healthz on :9100 (the image's HEALTHCHECK port)")
    check(all(not str(v).startswith("/") for v in (lb.get("volumes") or [])),
          "leanbridge mounts no config file")
    check(str(lb.get("mem_limit", "")).lower() in ("1g", "1024m", "1073741824"),
          "leanbridge has a 1 GiB memory limit (its pending bound is sized from it)",
          str(lb.get("mem_limit")))


def apps_of(doc):
    """(the sandbox's --apps, env:NAME resolved from its environment, the
    bridge's LEANBRIDGE_APPS)."""
    sb = doc["services"]["sandbox"]
    sc = cmd_list(sb)
    sandbox = sc[sc.index("--apps") + 1] if "--apps" in sc else ""
    if sandbox.startswith("env:"):
        sandbox = env_dict(sb).get(sandbox[4:], "")
    return sandbox, env_dict(doc["services"]["leanbridge"]).get("LEANBRIDGE_APPS", "")


def check_compose_fresh(path):
    """A fresh clone (no docker/.env): the demo app on both sides, the
    sandbox as the API, and nothing from an env file."""
    doc = load(path)
    sandbox, bridge = apps_of(doc)
    check(bridge != "" and sandbox == bridge,
          "without docker/.env the sandbox and the bridge share the demo apps",
          f"{sandbox!r} vs {bridge!r}")
    env = env_dict(doc["services"]["leanbridge"])
    check(env.get("LEANBRIDGE_API_URL") == "http://sandbox:8080/api?action=multi",
          "without docker/.env the bridge talks to the sandbox", env.get("LEANBRIDGE_API_URL"))
    extra = sorted(k for k in env if not k.startswith("LEANBRIDGE_"))
    check(not extra, "without docker/.env no other variable reaches the bridge", str(extra))


def binds(svc):
    """{container path: host path} of a service's bind mounts, from either
    docker-compose 1.29's "src:dst:mode" strings or Compose v2's dicts."""
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out[v["target"]] = v["source"]
        else:
            parts = str(v).split(":")
            if len(parts) >= 2 and parts[0].startswith("/"):
                out[parts[1]] = parts[0]
    return out


def loopback_ports(svc):
    ports = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            ports.append((p.get("host_ip", ""), str(p.get("published", "")), str(p.get("target"))))
        else:
            parts = str(p).split("/")[0].split(":")
            ports.append((parts[0] if len(parts) == 3 else "", parts[-2], parts[-1]))
    return ports


def check_compose_monitoring(path):
    """The monitoring profile: Prometheus with the repository's config and
    rules, scraping the bridge service on its metrics port; Grafana with
    the datasource and the dashboard provisioned; both on loopback only."""
    import os
    import yaml
    doc = load(path)
    svcs = doc.get("services", {})
    for name in ("prometheus", "grafana"):
        check(name in svcs and svcs[name].get("profiles") == ["monitoring"],
              f"{name} is in the monitoring profile (and only there)")
    if not all(n in svcs for n in ("prometheus", "grafana", "leanbridge")):
        return
    prom, graf = svcs["prometheus"], svcs["grafana"]
    for name, svc, port in (("prometheus", prom, "9090"), ("grafana", graf, "3000")):
        ports = loopback_ports(svc)
        check(ports and all(ip == "127.0.0.1" for ip, _, _ in ports)
              and any(t == port for _, _, t in ports),
              f"{name} publishes {port} on 127.0.0.1 only", str(ports))

    pb = binds(prom)
    cfg_arg = [a for a in cmd_list(prom) if a.startswith("--config.file=")]
    cfg_path = cfg_arg[0].split("=", 1)[1] if cfg_arg else "/etc/prometheus/prometheus.yml"
    src = pb.get(cfg_path)
    check(src is not None and src.endswith("docker/prometheus/prometheus.yml")
          and os.path.isfile(src), f"prometheus gets docker/prometheus/prometheus.yml at {cfg_path}",
          str(pb))
    if not src or not os.path.isfile(src):
        return
    with open(src) as f:
        pcfg = yaml.safe_load(f)
    for rf in pcfg.get("rule_files") or []:
        target = rf if rf.startswith("/") else os.path.join(os.path.dirname(cfg_path), rf)
        check(target in pb and pb[target].endswith("docker/prometheus/" + os.path.basename(rf))
              and os.path.isfile(pb[target]),
              f"prometheus gets its rule file {rf} mounted at {target}")
    metrics_port = env_dict(svcs["leanbridge"]).get("LEANBRIDGE_METRICS_LISTEN", "").rsplit(":", 1)[-1]
    sds = [sd for job in pcfg.get("scrape_configs") or [] for sd in job.get("dns_sd_configs") or []]
    check(any("leanbridge" in sd.get("names", []) and sd.get("type") == "A"
              and str(sd.get("port")) == metrics_port for sd in sds),
          f"prometheus finds every bridge replica: DNS A records of 'leanbridge', port {metrics_port}",
          str(sds))

    gb = binds(graf)
    prov = gb.get("/etc/grafana/provisioning")
    check(prov is not None and prov.endswith("docker/grafana/provisioning") and os.path.isdir(prov),
          "grafana gets docker/grafana/provisioning", str(gb))
    if not prov or not os.path.isdir(prov):
        return
    dash_dirs = []
    for fn in sorted(os.listdir(os.path.join(prov, "dashboards"))):
        with open(os.path.join(prov, "dashboards", fn)) as f:
            dash_dirs += [p["options"]["path"] for p in yaml.safe_load(f).get("providers", [])]
    dash = [t for t in gb if any(t.startswith(d.rstrip("/") + "/") for d in dash_dirs)]
    check(len(dash) == 1 and gb[dash[0]].endswith("docker/grafana/leanbridge.json")
          and os.path.isfile(gb[dash[0]]),
          f"grafana provisions docker/grafana/leanbridge.json from {dash_dirs}", str(gb))
    urls = []
    for fn in sorted(os.listdir(os.path.join(prov, "datasources"))):
        with open(os.path.join(prov, "datasources", fn)) as f:
            urls += [d.get("url", "") for d in yaml.safe_load(f).get("datasources", [])]
    check(urls == ["http://prometheus:9090"], "grafana's datasource is the stack's prometheus",
          str(urls))


def duration_s(value):
    """A compose duration ("90s", "1m30s", "500ms", or seconds) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "": 1}
    parts = re.findall(r"([\d.]+)(ms|us|h|m|s)?", str(value))
    return sum(float(n) * units[u] for n, u in parts)


def check_grace_vs_bound(path, check_config_out):
    """The exit bound the bridge prints for the compose environment must be
    below the grace period compose gives it before SIGKILL."""
    lb = load(path)["services"]["leanbridge"]
    grace = duration_s(lb.get("stop_grace_period", "10s"))
    m = re.search(r"exit bound: (\d+) ms", check_config_out)
    check(m is not None, "leanbridge --check-config prints the exit bound", check_config_out)
    if m:
        bound = int(m.group(1)) / 1000
        check(bound < grace, f"stop_grace_period {grace:g} s exceeds the exit bound {bound:g} s",
              "raise stop_grace_period or lower shutdown.timeout.ms / api.timeout.ms / "
              "api.timeout.hold.ms")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "dockerfile":
        check_dockerfile(argv[2], argv[3])
    elif cmd == "compose":
        check_compose(argv[2])
    elif cmd == "compose-fresh":
        check_compose_fresh(argv[2])
    elif cmd == "compose-monitoring":
        check_compose_monitoring(argv[2])
    elif cmd == "compose-apps":
        print("\n".join(apps_of(load(argv[2]))))
        return 0
    elif cmd == "compose-env":
        for k, v in env_dict(load(argv[2])["services"]["leanbridge"]).items():
            print(f"{k}={v}")
        return 0
    elif cmd == "compose-api-url":
        print(env_dict(load(argv[2])["services"]["leanbridge"]).get("LEANBRIDGE_API_URL", ""))
        return 0
    elif cmd == "sandbox-opts":
        print("\n".join(a for a in cmd_list(load(argv[2])["services"]["sandbox"])
                        if a.startswith("--")))
        return 0
    elif cmd == "grace-vs-bound":
        check_grace_vs_bound(argv[2], argv[3])
    elif cmd == "apt-packages":
        ins = instructions(argv[2])
        stage = max(st for st, _, _ in ins) if argv[3] == "last" else int(argv[3])
        print("\n".join(apt_packages(ins, stage)))
        return 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
