#!/usr/bin/env bash
# The main job on a fresh machine: install everything, make busybox build/run images, build examples/shell with
# our procfile buildpack through the lifecycle (buildpacks sandboxed in the build image with bwrap, no Docker
# daemon), run the resulting image, and show what it is made of. A second run reuses base images and caches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CNB=.venv/bin/cnb
export CNB_HOME="${CNB_HOME:-$HOME/.local/share/cnb}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== base images (builders/tiny)"
$CNB -q base create --config builders/tiny/base.toml --build-image cnb-demo/tiny-build --run-image cnb-demo/tiny-run

echo "== build examples/shell"
mkdir -p "$work/buildpacks/cnb_procfile" "$work/layers" "$work/platform"
cp -r buildpacks/procfile "$work/buildpacks/cnb_procfile/0.1.0"
cp -r examples/shell "$work/app"
printf '[[order]]\n[[order.group]]\nid = "cnb/procfile"\nversion = "0.1.0"\n' > "$work/order.toml"
CNB_PLATFORM_API=0.15 $CNB lifecycle create \
  --app "$work/app" --layers "$work/layers" --platform "$work/platform" \
  --buildpacks "$work/buildpacks" --order "$work/order.toml" \
  --sandbox bwrap --build-image cnb-demo/tiny-build --run-image cnb-demo/tiny-run \
  --cache-dir "$CNB_HOME/cache/cnb-demo-shell" \
  cnb-demo/shell-app

echo "== run it (no daemon)"
$CNB run cnb-demo/shell-app
$CNB run cnb-demo/shell-app --process greet -- world

echo "== what it is"
$CNB image inspect cnb-demo/shell-app | sed -n '1,6p'
