#!/usr/bin/env bash
# Install what cnb and its tests need on a fresh Debian 12 machine: apt packages and a virtualenv.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap busybox-static mmdebstrap docker-registry apache2-utils skopeo umoci runc docker.io
              openssl ca-certificates git strace buildah passt shellcheck
              gcc libc6-dev binutils  # gcc -static + strip: the lifecycle bundle builder images carry
              golang-go)  # tests/buildpacks/test_go.py runs cnb/go's bin/build on this machine
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged registry service is not used: tests start their own on 127.0.0.1.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.cnb-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
# cnb's own bytecode, as a pip install of a wheel writes it: an editable install has none, and where
# PYTHONDONTWRITEBYTECODE is set every cnb command would compile its modules again (about 0.2 s each time).
.venv/bin/python -m compileall -q cnbplatform >/dev/null
echo "setup: ready (.venv/bin/cnb)" >&2
