#!/usr/bin/env bash
# Sets everything up, then runs the demo: the local stack, 2,000 AG News articles routed under a
# guarantee with simulated workers, the payoff report, an export with its datasheet, and the stack
# stopped again. Extra arguments go to `labelstream demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/labelstream demo "$@"
