"""What a run asks of the machine: memory checked up front, and CPU threads.

Memory: what one task of a meta-batch holds, times the tasks drawn at once, is checked against
the memory available before the first step, so a run that cannot fit stops with one line instead
of an allocator's traceback minutes later. By default a task holds its own tensors (a lower
bound); a learner whose memory grows with the batch in other ways gives a closer estimate with
`bytes_per_task(probe)` for a one-task batch `probe`: MAML in `vmap` mode (the autograd graph of
every task at once, measured with `saved_bytes`), RL² and MAML-RL (the trajectories of every
task and the activations their outer loss keeps, `agents.rollout.trajectory_bytes`).

Threads: the per-operation work of a small model is too little to split, and torch's
intra-op threads then only wait on each other: with one other busy process on a 2-core
machine the sinusoid demo ran 10x slower with 2 threads. Models under `SMALL_MODEL` numbers
run on one thread unless the user chose (`--threads`, or `OMP_NUM_THREADS` in the
environment); larger ones keep torch's default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from metarl.errors import UsageError
from metarl.seeding import make_generator

SMALL_MODEL = 1_000_000
"""Numbers (parameters and optimiser state) below which a learner runs on one CPU thread."""


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in a task batch (a dataclass, mapping, sequence or tensor)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(tensor_bytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd saves for the backward pass while `fn()` runs: what a
    graph kept alive until its backward costs (each storage counted once, by its full size)."""
    sizes: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        sizes[storage.data_ptr()] = max(sizes.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(sizes.values())


def available_bytes(device: torch.device) -> int | None:
    """Free memory of `device` (CUDA: `mem_get_info`; CPU: MemAvailable of /proc/meminfo,
    capped by a cgroup memory limit); None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    try:  # a container's limit (cgroup v2) may be tighter than the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max" and free is not None:
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _gb(n: float) -> str:
    return f"{n / 1e12:,.1f} TB" if n >= 1e12 else f"{n / 1e9:.1f} GB"


def check_fits(
    learner: Any,
    distribution: Any,
    sizes: list[tuple[str, str, int]],
    seed: int,
    device: torch.device,
) -> None:
    """For each (setting, split, tasks at once), raise UsageError when that many tasks need more
    than the free memory of `device`: the tasks' tensors, or the learner's `bytes_per_task`."""
    free = available_bytes(device)
    if free is None:
        return
    estimate = getattr(learner, "bytes_per_task", None)
    for setting, split, n in sizes:
        # a throwaway generator: the run's own streams are not touched
        probe = distribution.sample(split, 1, make_generator(seed, "memory_probe", device))
        per_task = int(estimate(probe)) if estimate is not None else tensor_bytes(probe)
        need = per_task * n
        if need > free:
            fit = max(1, free // max(per_task, 1))
            raise UsageError(
                f"{setting}={n} needs at least {_gb(need)} of {device.type} memory ({per_task:,} "
                f"bytes per task) but {_gb(free)} is free; lower {setting} (at most "
                f"{fit:,} fit)"
            )


def state_numel(state: Any) -> int:
    """Floating-point numbers in a nested state dict (parameters, optimiser moments)."""
    if isinstance(state, torch.Tensor):
        return state.numel() if state.is_floating_point() else 0
    if isinstance(state, dict):
        return sum(state_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_numel(v) for v in state)
    return 0


def choose_threads(learner: Any, threads: int | None = None) -> int:
    """Set torch's intra-op CPU threads for this process and return the number: `threads` when
    given, torch's default when OMP_NUM_THREADS is set or the learner is large, else 1."""
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads {threads} must be at least 1")
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ and state_numel(learner.state_dict()) < SMALL_MODEL:
        torch.set_num_threads(1)
    return torch.get_num_threads()
