#!/usr/bin/env bash
# Set up (if needed), lint, type-check, then run the test suite (slow tests excluded; add `-m slow` for them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check metarl envs agents tests scripts
.venv/bin/mypy  # metarl, envs and agents (pyproject.toml [tool.mypy])
exec .venv/bin/python -m pytest "$@"
