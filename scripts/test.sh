#!/usr/bin/env bash
# The test command: set up (apt + venv), lint, type-check, and run the whole suite.
# The suite starts the servers it uses itself (docker-registry, a Docker engine) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" && .venv/bin/ruff check cnbplatform tests bench && .venv/bin/ruff format --check cnbplatform tests bench
echo "== mypy --strict" && .venv/bin/mypy --strict cnbplatform
echo "== pytest" && .venv/bin/pytest -q "$@"
