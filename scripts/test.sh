#!/usr/bin/env bash
# Set up (if needed), lint, then run the test suite (slow tests excluded; add `-m slow` for them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check metarl envs agents tests scripts
exec .venv/bin/python -m pytest "$@"
