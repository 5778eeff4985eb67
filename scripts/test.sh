#!/usr/bin/env bash
# Sets everything up, then runs the checks CI runs: lint, import contracts, lock and protobuf drift, unit and integration
# tests (the integration tests start a real local stack on free ports). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-test-tools.sh
echo "== ruff"
.venv/bin/ruff check services scripts integration_tests deploy/image deploy/triton helm/labelstream/files
echo "== import contracts"
.venv/bin/lint-imports
echo "== lock file (uv.lock agrees with pyproject.toml)"
.venv/bin/uv lock --check --quiet
echo "== generated protobuf code"
.venv/bin/python scripts/gen_protos.py --check
echo "== tests"
exec .venv/bin/python -m pytest -ra "$@"
