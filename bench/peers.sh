#!/usr/bin/env bash
# bench/peers.sh: cnb against BuildKit and `buildah bud` on a Python or Node.js app (issues 4, 11). See peers.md.
#
#   bash bench/peers.sh [--workload flask|app-big|node-express] [--repeat N] [--workdir DIR] [--keep] [--no-buildah]
#
# Workloads: flask (examples/python-flask: Flask + gunicorn), app-big (the same app with numpy and pandas too, a
# 170 MB venv) and node-express (examples/node-express: Express through npm ci and its package-lock.json).
# All three build from the same base images (the builders/bookworm build and run images made by `cnb base
# create`, loaded into the Docker engine and into buildah's storage), install with the network off from one local
# wheel directory (Python) or npm cache directory (Node.js), and write to their own store (cnb: its local store;
# BuildKit: the engine; buildah: its storage). Each round runs, per tool: cold build, no-op rebuild, one-line app
# change, one-dependency change (adds six, or is-number for Node.js), OS update (the updated base images take over
# the same tags; cnb: rebase; Dockerfile: rebuild). Medians over the rounds are printed with their ratio to
# BuildKit from the same run (docs/design.md §5).
#
# Starts its own dockerd (no bridge, no iptables) and uses a private buildah storage and CNB_HOME, all under a temp
# dir that is removed on exit, with everything it started. Network: PyPI once (pip download into the wheel dir) or
# the npm registry once (the host's npm fills the npm cache), the Debian mirror when base images must be made (cnb
# base create), apt when buildah is missing; nothing else.
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REPEAT=3
PARENT=""
KEEP=0
USE_BUILDAH=1
WORKLOAD=flask
usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --repeat) REPEAT="${2:?--repeat needs a number}"; shift 2 ;;
    --workdir) PARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-buildah) USE_BUILDAH=0; shift ;;
    --workload) WORKLOAD="${2:?--workload needs a name}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "peers: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "peers: --repeat must be a positive integer" >&2; exit 2; }
case "$WORKLOAD" in
  flask | app-big) LANGUAGE=python ;;
  node-express) LANGUAGE=node ;;
  *) echo "peers: unknown workload $WORKLOAD (flask, app-big or node-express)" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'peers: error: %s\n' "$*" >&2; exit 1; }

# CNB_PYTHON=PATH: a Python with cnb's dependencies that runs this checkout's cnb (no scripts/setup.sh, which would
# point a shared venv's editable install here); by default scripts/setup.sh makes $ROOT/.venv.
if [[ -n "${CNB_PYTHON:-}" ]]; then
  CNB="$(mktemp /tmp/peers-cnb.XXXXXX)"
  printf '#!/bin/sh\nPYTHONPATH=%q exec %q -m cnbplatform "$@"\n' "$ROOT" "$CNB_PYTHON" > "$CNB"
  chmod +x "$CNB"
  PY="$CNB_PYTHON"
  # cnb's bytecode, as an install writes it (scripts/setup.sh does the same): with PYTHONDONTWRITEBYTECODE set,
  # every command would otherwise compile its modules again
  "$PY" -m compileall -q "$ROOT/cnbplatform" >/dev/null
else
  SETUP_LOG="$(mktemp /tmp/peers-setup.XXXXXX)"
  bash "$ROOT/scripts/setup.sh" > "$SETUP_LOG" 2>&1 || { cat "$SETUP_LOG" >&2; die "scripts/setup.sh failed (above)"; }
  rm -f "$SETUP_LOG"
  CNB="$ROOT/.venv/bin/cnb"
  PY="$ROOT/.venv/bin/python"
fi
DOCKER=/usr/bin/docker # Debian's docker.io client (20.10): BuildKit built in, no buildx plugin needed
[[ -x "$DOCKER" ]] || die "$DOCKER is missing (apt-get install docker.io)"
command -v python3 >/dev/null || die "python3 is needed for the report"
[[ "$LANGUAGE" != node ]] || command -v npm >/dev/null || die "the node-express workload needs npm on this machine"

if [[ -n "$PARENT" ]]; then
  mkdir -p "$PARENT"
  W="$(mktemp -d "$(cd "$PARENT" && pwd)/peers.XXXXXX")"
else
  W="$(mktemp -d /tmp/peers.XXXXXX)"
fi
# dockerd's exec root holds containerd sockets: keep it short (unix socket paths < 108 bytes).
SHORT="$(mktemp -d /tmp/pk.XXXXXX)"
DOCKERD_PID=""

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local children=()
    mapfile -t children < <(pgrep -P "$DOCKERD_PID") # its containerd, stopped by dockerd itself unless it hangs
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 300); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      kill -KILL "$DOCKERD_PID" "${children[@]}" 2>/dev/null
    fi
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # Mounts left by dockerd (netns) and by buildah's overlay storage, deepest first.
  awk -v a="$W/" -v b="$SHORT/" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/self/mounts |
    sort -r | while read -r point; do umount -l "$point" 2>/dev/null; done
  rm -rf "$SHORT"
  if [[ -n "${CNB_PYTHON:-}" ]]; then rm -f "$CNB"; fi
  if ((KEEP)); then
    echo "peers: kept $W" >&2
  else
    rm -rf "$W"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOGS="$W/logs"
RESULTS="$W/results.tsv"
mkdir -p "$LOGS" "$W/failed"
: > "$RESULTS"
declare -A BROKEN=()
TOOLS=(buildkit cnb)
((USE_BUILDAH)) && TOOLS+=(buildah)

# step TOOL LABEL SCENARIO CMD...: run CMD, output to a log; with a SCENARIO, record its wall time. A failure
# marks TOOL broken (the rest of its steps are skipped) and shows the log's tail; the other tools go on.
step() {
  local tool=$1 label=$2 scenario=$3 rc=0 t0 t1
  shift 3
  [[ -z "${BROKEN[$tool]:-}" ]] || return 0
  local log="$LOGS/$tool.$label.log"
  t0=$EPOCHREALTIME
  "$@" >>"$log" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  if ((rc)); then
    BROKEN[$tool]="step '$label' failed (exit $rc): $*"
    tail -n 25 "$log" > "$W/failed/$tool.log"
    printf 'peers: %s: %s\n' "$tool" "${BROKEN[$tool]}" >&2
    sed "s/^/  [$tool] /" "$W/failed/$tool.log" >&2
    return 0
  fi
  [[ -z "$scenario" ]] || printf '%s\t%s\t%s\t%s\n' "$tool" "$scenario" "$t0" "$t1" >> "$RESULTS"
}

# --- 1. base images (in the user's cnb store; made once) ----------------------------------------------------------
say "base images"
cd "$ROOT"
if ! "$CNB" -q image inspect local:cnb/bookworm-run >/dev/null 2>&1 ||
  ! "$CNB" -q image inspect local:cnb/bookworm-build >/dev/null 2>&1; then
  say "cnb base create: cnb/bookworm-build, cnb/bookworm-run (mmdebstrap, about 90 s)"
  "$CNB" base create --config builders/bookworm/base.toml \
    --build-image cnb/bookworm-build --run-image cnb/bookworm-run
fi
# The "OS update": the recipe with one more package in both images (run-packages), as the images rebuilt after a
# Debian update are: both change, the Python stays the same.
if ! "$CNB" -q image inspect local:cnb-bench/bookworm-run-updated >/dev/null 2>&1 ||
  ! "$CNB" -q image inspect local:cnb-bench/bookworm-build-updated >/dev/null 2>&1; then
  say "cnb base create: cnb-bench/bookworm-{build,run}-updated (the recipe + less)"
  sed 's/^run-packages = \[/run-packages = ["less", /' builders/bookworm/base.toml > "$W/base-updated.toml"
  grep -q '"less"' "$W/base-updated.toml" || die "could not add a package to a copy of builders/bookworm/base.toml"
  "$CNB" base create --config "$W/base-updated.toml" \
    --build-image cnb-bench/bookworm-build-updated --run-image cnb-bench/bookworm-run-updated
fi
BASES="$W/bases"
for pair in build:cnb/bookworm-build run:cnb/bookworm-run \
  build-updated:cnb-bench/bookworm-build-updated run-updated:cnb-bench/bookworm-run-updated; do
  "$CNB" -q image copy "local:${pair#*:}" "oci:$BASES:${pair%%:*}" >/dev/null
done

# --- the app, a snapshot of builder + buildpacks, the packages ----------------------------------------------------
# PKGS: the package dir every tool installs from (wheels or npm's cache); src/deps-b: the dependency files after the
# one-dependency change; CNB_PKG_ARGS: how cnb gets the package dir (the Dockerfiles bind-mount it).
say "sources and packages"
mkdir -p "$W/src/builders" "$W/src/deps-b"
cp -r "$ROOT/builders/bookworm" "$W/src/builders/bookworm"
cp -r "$ROOT/buildpacks" "$W/src/buildpacks"
if [[ "$LANGUAGE" == python ]]; then
  PKGS=wheels
  APP_MAIN=app.py COMMENT='#'
  mkdir -p "$W/wheels"
  cp -r "$ROOT/examples/python-flask" "$W/src/app"
  if [[ "$WORKLOAD" == app-big ]]; then # numpy and pandas too, their dependencies as they resolve
    printf 'numpy==2.4.6\npandas==3.1.2\n' >> "$W/src/app/requirements.txt"
  fi
  # cnb/python fetches uv (its pinned version) with pip from the same wheel dir.
  UV_VERSION="$(sed -n 's/^UV_VERSION = "\([^"]*\)".*/\1/p' "$ROOT/buildpacks/python/lib/build.py")"
  [[ -n "$UV_VERSION" ]] || die "no UV_VERSION in buildpacks/python/lib/build.py"
  REQ_EXTRA="six==1.17.0" # the one-requirement change: a small pure-Python wheel
  cp "$W/src/app/requirements.txt" "$W/src/deps-b/requirements.txt"
  echo "$REQ_EXTRA" >> "$W/src/deps-b/requirements.txt"
  # Wheels for the build images' Python (bookworm: CPython 3.11, glibc 2.36), whatever runs this script.
  PIP_CONFIG_FILE=/dev/null "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 \
    -d "$W/wheels" -r "$W/src/deps-b/requirements.txt" "uv==$UV_VERSION" > "$LOGS/pip-download.log" 2>&1 ||
    { tail -n 20 "$LOGS/pip-download.log" >&2; die "pip download of the wheels failed (log above)"; }
  wheel_names=("$W"/wheels/*.whl)
  wheel_names=("${wheel_names[@]##*/}")
  echo "   ${#wheel_names[@]} wheels: ${wheel_names[*]%%-[0-9]*}" >&2
  CNB_PKG_ARGS=(--env PIP_NO_INDEX=1 --env PIP_FIND_LINKS=/wheels --volume "$W/wheels:/wheels:ro")

  # The Dockerfile doing what cnb/python does: a venv without pip filled by the image's pip from the wheel dir
  # (mounted, like cnb's --volume), requirements copied before the app so an app change keeps the venv layer, and
  # a second stage that copies the venv and the app onto the run image, as buildpacks lay them out.
  cat > "$W/Dockerfile" <<'EOF'
ARG BUILD_IMAGE=cnb/bookworm-build
ARG RUN_IMAGE=cnb/bookworm-run

FROM ${BUILD_IMAGE} AS build
USER root
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY app/requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,source=wheels,target=/wheels \
    python3 -m venv --without-pip /layers/cnb_python/venv \
 && python3 -m pip --python /layers/cnb_python/venv/bin/python install -r /tmp/requirements.txt

FROM ${RUN_IMAGE}
COPY --from=build /layers/cnb_python/venv /layers/cnb_python/venv
COPY app/ /workspace/
ENV PATH=/layers/cnb_python/venv/bin:$PATH VIRTUAL_ENV=/layers/cnb_python/venv PYTHONUNBUFFERED=1
WORKDIR /workspace
USER 1000:1000
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "app:app"]
EOF
else
  PKGS=npm-cache
  APP_MAIN=server.js COMMENT='//'
  cp -r "$ROOT/examples/node-express" "$W/src/app"
  DEP_EXTRA="is-number@7.0.0" # the one-dependency change: a small pure-JS package without dependencies
  # The host's npm, once: the second package.json + package-lock.json (exact version, the registry URLs kept in
  # the lockfile whatever the user's npmrc says), then `npm ci` of both pairs into the cache dir.
  host_npm() {
    npm --cache "$W/npm-cache" --logs-dir "$LOGS/npm" --no-audit --no-fund --update-notifier=false \
      --ignore-scripts "$@" >> "$LOGS/npm-fill.log" 2>&1 ||
      { tail -n 20 "$LOGS/npm-fill.log" >&2; die "host npm $1 failed (log above)"; }
  }
  cp "$W/src/app/package.json" "$W/src/app/package-lock.json" "$W/src/deps-b/"
  (cd "$W/src/deps-b" && host_npm install --package-lock-only --save-exact \
    --omit-lockfile-registry-resolved=false "$DEP_EXTRA")
  grep -q '"node_modules/is-number"' "$W/src/deps-b/package-lock.json" ||
    die "npm did not add $DEP_EXTRA to the second package-lock.json"
  for pair in "$W/src/app" "$W/src/deps-b"; do
    rm -rf "$W/npm-fill" && mkdir "$W/npm-fill"
    cp "$pair/package.json" "$pair/package-lock.json" "$W/npm-fill/"
    (cd "$W/npm-fill" && host_npm ci)
  done
  rm -rf "$W/npm-fill"
  echo "   npm cache: $(du -sh "$W/npm-cache" | cut -f1), $(find "$W/npm-cache/_cacache/content-v2" -type f | wc -l)" \
    "blobs" >&2
  # cnb/node runs `npm ci --omit=dev --prefer-offline` in its modules layer with npm_config_cache from the
  # platform env when set (otherwise its npm-cache layer, empty on a cold build).
  CNB_PKG_ARGS=(--env npm_config_cache=/npm-cache --env npm_config_offline=true
    --volume "$W/npm-cache:/npm-cache:ro")

  # The Dockerfile doing what cnb/node does: package.json and the lockfile copied into the modules dir before the
  # app, so an app change keeps the node_modules layer; npm ci there from the same cache (bind-mounted, read-only
  # like cnb's --volume); a second stage with node_modules, the app's node_modules symlink to it and the app on the
  # run image, where buildpacks lay them out, with cnb/node's env and web process.
  cat > "$W/Dockerfile" <<'EOF'
ARG BUILD_IMAGE=cnb/bookworm-build
ARG RUN_IMAGE=cnb/bookworm-run

FROM ${BUILD_IMAGE} AS build
USER root
ENV npm_config_cache=/npm-cache npm_config_offline=true npm_config_update_notifier=false \
    npm_config_fund=false npm_config_audit=false npm_config_logs_dir=/tmp/npm-logs
WORKDIR /layers/cnb_node/modules
COPY app/package.json app/package-lock.json ./
RUN --mount=type=bind,source=npm-cache,target=/npm-cache \
    npm ci --omit=dev --prefer-offline \
 && mkdir -p /workspace && ln -s /layers/cnb_node/modules/node_modules /workspace/node_modules

FROM ${RUN_IMAGE}
COPY --from=build /layers/cnb_node/modules /layers/cnb_node/modules
COPY --from=build /workspace/ /workspace/
COPY app/ /workspace/
ENV PATH=/layers/cnb_node/modules/node_modules/.bin:$PATH NODE_ENV=production
WORKDIR /workspace
USER 1000:1000
CMD ["/bin/sh", "-c", "node server.js"]
EOF
fi

# Each tool builds from its own context: app/ plus (for the Dockerfiles) the package dir as hard links.
for tool in "${TOOLS[@]}"; do
  mkdir -p "$W/ctx/$tool"
  [[ "$tool" == cnb ]] || cp -al "$W/$PKGS" "$W/ctx/$tool/$PKGS"
done
fresh_app() { rm -rf "$W/ctx/$1/app" && cp -r "$W/src/app" "$W/ctx/$1/app"; }
change_app() { printf '%s one-line change, round %s\n' "$COMMENT" "$2" >> "$W/ctx/$1/app/$APP_MAIN"; }
change_requirement() { cp "$W"/src/deps-b/* "$W/ctx/$1/app/"; }

# --- 2. the Docker engine and buildah, with the same base images ---------------------------------------------------
say "dockerd"
mkdir -p "$W/docker" "$SHORT/e"
dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
  --data-root "$W/docker" --exec-root "$SHORT/e" --pidfile "$SHORT/docker.pid" -H "unix://$SHORT/docker.sock" \
  > "$LOGS/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST="unix://$SHORT/docker.sock"
for _ in $(seq 600); do
  "$DOCKER" version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  sleep 0.1
done
if ! "$DOCKER" version >/dev/null 2>&1; then
  tail -n 20 "$LOGS/dockerd.log" >&2
  die "dockerd did not start (log above): BuildKit is the baseline, nothing to compare with"
fi
# In every store: cnb/bookworm-{build,run}:original and :updated; :latest (what the builds use) is moved by the
# OS update step and put back by each round's reset.
for kind in build run; do
  "$CNB" -q image copy "oci:$BASES:$kind" "docker-daemon:cnb/bookworm-$kind:original" >/dev/null
  "$CNB" -q image copy "oci:$BASES:$kind-updated" "docker-daemon:cnb/bookworm-$kind:updated" >/dev/null
done

if ((USE_BUILDAH)); then
  say "buildah"
  if ! command -v buildah >/dev/null; then
    step buildah install "" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah
  fi
  mkdir -p "$W/buildah"
  cat > "$W/buildah/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  cat > "$W/buildah/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$W/buildah/run"
graphroot = "$W/buildah/root"
EOF
  printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' > "$W/buildah/registries.conf"
  export CONTAINERS_CONF="$W/buildah/containers.conf" CONTAINERS_STORAGE_CONF="$W/buildah/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$W/buildah/registries.conf" BUILDAH_ISOLATION=oci
  # skopeo writes into the same storage (buildah pull oci:DIR names the image after DIR, which must be lowercase).
  for kind in build run; do
    step buildah "load-$kind" "" skopeo copy -q "oci:$BASES:$kind" \
      "containers-storage:localhost/cnb/bookworm-$kind:original"
    step buildah "load-$kind-updated" "" skopeo copy -q "oci:$BASES:$kind-updated" \
      "containers-storage:localhost/cnb/bookworm-$kind:updated"
  done
fi

# cnb: a private CNB_HOME with the same images (the user's store is left alone).
export CNB_HOME="$W/cnb-home"
for kind in build run; do
  "$CNB" -q image copy "oci:$BASES:$kind" "local:cnb/bookworm-$kind:original" >/dev/null
  "$CNB" -q image copy "oci:$BASES:$kind-updated" "local:cnb/bookworm-$kind:updated" >/dev/null
done

# --- 3. the builds -------------------------------------------------------------------------------------------------
bk_build() { # [--build-arg ...]
  DOCKER_BUILDKIT=1 "$DOCKER" build --network none --progress plain -f "$W/Dockerfile" -t bench/app:buildkit \
    "$@" "$W/ctx/buildkit"
}
bk_tag() { "$DOCKER" tag "cnb/bookworm-$1:$2" "cnb/bookworm-$1:latest"; } # KIND VERSION
bk_reset() {
  { "$DOCKER" image rm -f bench/app:buildkit || true; } &&
    bk_tag build original && bk_tag run original && "$DOCKER" builder prune -af
}

bh_build() {
  buildah bud --layers --pull=never --network none -f "$W/Dockerfile" -t localhost/bench/app:buildah \
    --build-arg BUILD_IMAGE=localhost/cnb/bookworm-build --build-arg RUN_IMAGE=localhost/cnb/bookworm-run \
    "$W/ctx/buildah"
}
bh_tag() { buildah tag "localhost/cnb/bookworm-$1:$2" "localhost/cnb/bookworm-$1:latest"; }
bh_reset() { # the app image and every cached intermediate image go; the base images stay
  { buildah rmi -f localhost/bench/app:buildah || true; } &&
    bh_tag build original && bh_tag run original && buildah rmi --prune
}

cnb_build() {
  "$CNB" build bench/app --builder "$W/src/builders/bookworm" --path "$W/ctx/cnb/app" --cache-dir "$W/cnb-cache" \
    --network none "${CNB_PKG_ARGS[@]}"
}
cnb_tag() { "$CNB" -q image tag "cnb/bookworm-$1:$2" "cnb/bookworm-$1:latest"; }
cnb_reset() { # no app image, no build cache, no layer-cache records; the unpacked builder rootfs stays
  { "$CNB" image rm bench/app || true; } &&
    cnb_tag build original && cnb_tag run original && rm -rf "$W/cnb-cache" "$CNB_HOME/layer-cache"
}
cnb_rebase() { "$CNB" rebase bench/app --run-image cnb/bookworm-run; }

declare -A BUILD=([buildkit]=bk_build [buildah]=bh_build [cnb]=cnb_build)
declare -A RESET=([buildkit]=bk_reset [buildah]=bh_reset [cnb]=cnb_reset)
declare -A TAG=([buildkit]=bk_tag [buildah]=bh_tag [cnb]=cnb_tag)

# One round: every scenario once, in the order a developer meets them, from a cold start.
round() { # TOOL ROUND
  local tool=$1 r=$2 build=${BUILD[$1]}
  step "$tool" "r$r.reset" "" "${RESET[$tool]}"
  step "$tool" "r$r.app" "" fresh_app "$tool"
  step "$tool" "r$r.cold" cold "$build"
  step "$tool" "r$r.noop" noop "$build"
  step "$tool" "r$r.edit" "" change_app "$tool" "$r"
  step "$tool" "r$r.app-change" app "$build"
  step "$tool" "r$r.edit-req" "" change_requirement "$tool"
  step "$tool" "r$r.req-change" req "$build"
  # OS update. Dockerfiles: first the run image alone (the build stage stays cached), then the build image too
  # (the venv is made again). cnb rebases once both tags have moved; the build image plays no part in a rebase.
  step "$tool" "r$r.update-run" "" "${TAG[$tool]}" run updated
  if [[ "$tool" != cnb ]]; then
    step "$tool" "r$r.os-run-update" osrun "$build"
  fi
  step "$tool" "r$r.update-build" "" "${TAG[$tool]}" build updated
  if [[ "$tool" == cnb ]]; then
    step "$tool" "r$r.os-update" os cnb_rebase
  else
    step "$tool" "r$r.os-update" os "$build"
  fi
}

# Warm-up, not measured: unpacks cnb's builder rootfs once (the engine and buildah extracted the base layers when
# the images were loaded) and warms the page cache for every tool.
say "warm-up build per tool"
for tool in "${TOOLS[@]}"; do
  step "$tool" warmup.reset "" "${RESET[$tool]}"
  step "$tool" warmup.app "" fresh_app "$tool"
  step "$tool" warmup.build "" "${BUILD[$tool]}"
done
for r in $(seq "$REPEAT"); do
  say "round $r of $REPEAT"
  for tool in "${TOOLS[@]}"; do
    round "$tool" "$r"
  done
done

# --- 4. the table --------------------------------------------------------------------------------------------------
FAILS="$W/failures.tsv"
: > "$FAILS"
for tool in "${TOOLS[@]}"; do
  [[ -z "${BROKEN[$tool]:-}" ]] || printf '%s\t%s\n' "$tool" "${BROKEN[$tool]}" >> "$FAILS"
done
echo
echo "cnb vs BuildKit vs buildah: workload $WORKLOAD, medians of $REPEAT round(s), $(date -u +%Y-%m-%dT%H:%MZ)," \
  "$(nproc) cores; cnb $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$RESULTS" "$FAILS" "${TOOLS[*]}" "$WORKLOAD" <<'EOF'
import statistics, sys
from collections import defaultdict

results, fails, tools, workload = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
times = defaultdict(list)
for line in open(results):
    tool, scenario, t0, t1 = line.split("\t")
    times[tool, scenario].append(float(t1) - float(t0))
broken = dict(line.rstrip("\n").split("\t", 1) for line in open(fails) if line.strip())
targets = {  # cnb/BuildKit: issue 4 for flask, issue 11 for app-big; node-express: the issue names none for
    # the OS update, flask's is used
    "flask": {"cold": 1.0, "noop": 4.0, "app": 3.0, "req": 0.7, "os": 0.05},
    "app-big": {"cold": 0.6, "noop": 3.0, "app": 2.5, "req": 0.2, "os": 0.02},
    "node-express": {"cold": 1.0, "noop": 3.0, "app": 3.0, "req": 1.0, "os": 0.05},
}[workload]
change = "one-dependency change" if workload == "node-express" else "one-requirement change"
rows = [("cold", "cold build"), ("noop", "no-op rebuild"), ("app", "one-line app change"),
        ("req", change), ("os", "OS update"), ("osrun", "  run image only (info)")]
rows = [(key, label, targets.get(key)) for key, label in rows]
times.update({(tool, "osrun"): times[tool, "os"] for tool in ["cnb"] if times.get((tool, "os"))})

def median(tool, key):
    values = times.get((tool, key))
    return statistics.median(values) if values else None

def fmt(value):
    return "-" if value is None else f"{value:.2f} s"

head = f"{'scenario':<24}{'BuildKit':>10}{'cnb':>10}{'cnb/BK':>8}{'target':>8}  {'':<7}"
if "buildah" in tools:
    head += f"{'buildah':>10}{'bh/BK':>8}"
print(head)
for key, label, target in rows:
    base, ours = median("buildkit", key), median("cnb", key)
    ratio = ours / base if base and ours is not None else None
    verdict = "" if target is None else "n/a" if ratio is None else "met" if ratio <= target else "MISSED"
    line = f"{label:<24}{fmt(base):>10}{fmt(ours):>10}"
    line += f"{'-' if ratio is None else f'{ratio:.2f}x':>8}{'' if target is None else f'<={target:g}x':>8}  {verdict:<7}"
    if "buildah" in tools:
        theirs = median("buildah", key)
        line += f"{fmt(theirs):>10}{'-' if theirs is None or not base else f'{theirs / base:.2f}x':>8}"
    print(line)
print()
for tool in tools:
    spans = [f"{key} " + "/".join(f"{v:.2f}" for v in times[tool, key])
             for key, _, _ in rows if times.get((tool, key)) and not (tool == "cnb" and key == "osrun")]
    print(f"{tool:<9}runs (s): " + ("; ".join(spans) or "none"))
for tool, why in broken.items():
    print(f"{tool}: FAILED, {why}")
EOF
if [[ -s "$FAILS" ]]; then
  echo
  for tool in "${TOOLS[@]}"; do
    [[ -f "$W/failed/$tool.log" ]] || continue
    echo "--- last lines of the failed $tool step"
    cat "$W/failed/$tool.log"
  done
fi
