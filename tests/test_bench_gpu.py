"""scripts/bench_gpu.py on the CPU (tiny sizes) and scripts/gpu_check.sh without a GPU."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_gpu  # noqa: E402

QUICK = argparse.Namespace(quick=True, data_dir=None, device="cpu", threads=1)
CPU = torch.device("cpu")


def test_gpu_check_without_a_gpu_says_so_in_one_line_and_exits_0():
    env = {**os.environ, "NVIDIA_SMI": "/nonexistent/nvidia-smi"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no NVIDIA GPU on this machine")
    assert proc.stderr == ""


def test_env_section_counts_env_steps_per_second():
    row = bench_gpu.env_section(QUICK, CPU)
    assert row["number"] > 0 and row["detail"] == "64 tasks x 64 copies, 20 steps"


@pytest.mark.parametrize("section", ["rl2", "maml", "protonet"])
def test_training_sections_measure_real_steps(section, omniglot_dir):
    row = bench_gpu.RUNNERS[section](QUICK, CPU)
    assert row["number"] > 0 and bench_gpu.SECTIONS[section]
    if section == "rl2":  # the ratio of the two rates it names
        ours, peer = (float(x.split(" env")[0].split(" (")[0].replace(",", "")) for x in
                      row["detail"].split(" vs "))  # fmt: skip
        assert row["number"] == pytest.approx(ours / peer, rel=1e-2)


def test_ddp_section_is_skipped_without_two_gpus():
    assert bench_gpu.ddp_section(QUICK, CPU) == {
        "skipped": "skipped: needs 2 CUDA GPUs, this machine has 0"
    }


def test_a_section_past_its_timeout_is_reported_not_raised():
    row = bench_gpu.run_section("env", QUICK, timeout=0.05)
    assert row["number"] is None and row["note"].startswith("timed out after")


def test_the_table_and_json_from_fresh_processes(tmp_path):
    out = tmp_path / "gpu.md"
    rc = bench_gpu.main(["--device", "cpu", "--quick", "--sections", "env,ddp", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "| section | number | target | met? | CUDA max MiB | time s | command |" in text
    env_row = next(x for x in text.splitlines() if x.startswith("| env:"))
    assert "| >= 1e+07 | - | - |" in env_row  # quick: no verdict; CPU: no CUDA memory
    assert "`python scripts/bench_gpu.py --sections env --device cpu --quick`" in env_row
    assert "skipped: needs 2 CUDA GPUs" in text and "torchrun --nproc-per-node 2 -m metarl" in text
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["section"] for r in rows] == ["env", "ddp"] and rows[0]["number"] > 0
    assert bench_gpu.main(["--sections", "nope", "--out", str(out)]) == 2
