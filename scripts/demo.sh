#!/usr/bin/env bash
# Sets everything up, then runs the demo: the local stack, the SST-2 project with 500 items,
# simulated workers, a report, and the stack stopped again. Extra arguments go to `labelstream demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/labelstream demo "$@"
