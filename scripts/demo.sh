#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install everything, make the Debian bookworm base images (once),
# build examples/python-flask with the bookworm builder (buildpacks sandboxed with bwrap, no Docker daemon),
# run it, fetch its page, and print a one-line SBOM summary. A second run reuses base images and caches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CNB=.venv/bin/cnb
PY=.venv/bin/python
export CNB_HOME="${CNB_HOME:-$HOME/.local/share/cnb}"

if $CNB -q image inspect cnb/bookworm-build >/dev/null 2>&1 && $CNB -q image inspect cnb/bookworm-run >/dev/null 2>&1; then
  echo "== base images: reusing cnb/bookworm-build and cnb/bookworm-run (cnb base create refreshes them)"
else
  echo "== base images: Debian bookworm with mmdebstrap (a minute or two, once)"
  $CNB base create --config builders/bookworm/base.toml --build-image cnb/bookworm-build --run-image cnb/bookworm-run
fi

echo "== cnb build cnb-demo/flask --builder builders/bookworm --path examples/python-flask"
ca_flags=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  ca_flags=(--host-ca-certs /etc/ssl/certs/ca-certificates.crt)  # this machine's CAs, for pip behind a proxy
fi
$CNB build cnb-demo/flask --builder builders/bookworm --path examples/python-flask "${ca_flags[@]}"

echo "== cnb run cnb-demo/flask"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$CNB run cnb-demo/flask -e PORT="$port" > "${TMPDIR:-/tmp}/cnb-demo-flask.log" 2>&1 &
app=$!
trap 'kill "$app" 2>/dev/null || true; wait "$app" 2>/dev/null || true' EXIT
$PY - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
deadline = time.time() + 60
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            print(f"GET {url} -> {response.status}: {response.read().decode().strip()}")
            break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"the app did not answer on {url}")
        time.sleep(0.2)
PY

echo "== SBOM"
$CNB sbom export cnb-demo/flask --format cyclonedx | $PY -c '
import json, sys
doc = json.load(sys.stdin)
def walk(components):
    for c in components:
        yield c
        yield from walk(c.get("components", []))
purls = [c.get("purl", "") for c in walk(doc.get("components", []))]
deb = sum(p.startswith("pkg:deb/") for p in purls)
pypi = sum(p.startswith("pkg:pypi/") for p in purls)
version = doc["specVersion"]
print(f"SBOM: {len(purls)} components ({deb} Debian packages, {pypi} Python packages), CycloneDX {version}")
'
