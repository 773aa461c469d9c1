#!/usr/bin/env bash
# The GPU path, checked on a machine with an NVIDIA GPU, in at most 8 minutes (GPU_CHECK_SECONDS):
# set up, run the CUDA tests (`pytest -k cuda`), then the benchmark sections of
# scripts/bench_gpu.py (tensor env throughput, RL² loop vs SyncVectorEnv, second-order MAML,
# ProtoNet 60-way, the 2-GPU equality check), each with its own timeout; writes results/gpu.md.
# Without a GPU (no nvidia-smi, or it lists none) it says so in one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
SMI=${NVIDIA_SMI:-nvidia-smi}
if ! command -v "$SMI" >/dev/null 2>&1 || ! "$SMI" -L 2>/dev/null | grep -q GPU; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi missing or lists none); nothing to check"
  exit 0
fi
START=$(date +%s)
TOTAL=${GPU_CHECK_SECONDS:-480}
left() { echo $((TOTAL - ($(date +%s) - START))); }
least() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

timeout "$(least "$(left)" 120)" bash scripts/setup.sh \
  || echo "gpu_check: setup did not finish cleanly; going on with the existing .venv"
if ! .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: nvidia-smi lists a GPU but torch in .venv sees none (a CPU wheel?); install a CUDA build of torch into .venv"
  exit 1
fi
mkdir -p results
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

# CUDA tests: what is left minus the benchmarks' share (at most 200 s).
TEST_S=$(least $(($(left) - 230)) 200)
TEST_CMD=".venv/bin/python -m pytest -q -p no:cacheprovider -k cuda tests"
if [ "$TEST_S" -gt 10 ]; then
  timeout "$TEST_S" $TEST_CMD >results/gpu_tests.log 2>&1
  rc=$?
  summary=$(tail -n 1 results/gpu_tests.log)
  [ "$rc" -eq 124 ] && summary="timed out after ${TEST_S} s (see results/gpu_tests.log)"
else
  rc=1 summary="not run: no time left after set-up"
fi
echo "gpu_check: CUDA tests: $summary"

.venv/bin/python scripts/bench_gpu.py --device cuda --threads "$OMP_NUM_THREADS" \
  --budget "$(($(left) - 5))" --out results/gpu.md
met=$([ "$rc" -eq 0 ] && echo yes || echo no)
echo "| CUDA tests (results/gpu_tests.log) | $summary | all pass | $met | - | - | \`pytest -q -k cuda tests\` |" >>results/gpu.md
echo "gpu_check: wrote results/gpu.md in $(($(date +%s) - START)) s"
