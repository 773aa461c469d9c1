#!/usr/bin/env bash
# Set up (if needed), then run the main job on its embedded default: MAML meta-trained on
# sinusoid regression (no data to fetch, a few minutes on 2 CPU cores). Extra arguments are
# passed to `metarl train demo` (e.g. train.iterations=2000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/metarl train demo --run-dir runs/demo "$@"
