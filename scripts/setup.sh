#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with metarl and its extras installed.
# On a machine without an NVIDIA GPU it installs the CPU build of torch first (small and fast);
# with a GPU, pip resolves the regular (CUDA) torch from pyproject.toml's range.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q torch==2.13.0 2>/dev/null \
      || .venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
.venv/bin/pip install -q -e ".[dev,mujoco]"
