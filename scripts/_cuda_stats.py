"""Wall time and CUDA peak memory of a block, for the benchmark tables.

    with timed(device) as t:
        ...                       # the measured work
    t.seconds, t.cuda_max_mib     # cuda_max_mib is None on the CPU (shown as "-")

On CUDA the block starts and ends with `torch.cuda.synchronize()`, so queued kernels count,
and the peak is `torch.cuda.max_memory_allocated` since the block began.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    seconds: float = 0.0
    cuda_max_mib: float | None = None


@contextlib.contextmanager
def timed(device: torch.device | str) -> Iterator[Timing]:
    device = torch.device(device)
    out = Timing()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        yield out
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            out.cuda_max_mib = torch.cuda.max_memory_allocated(device) / 2**20
        out.seconds = time.perf_counter() - start


def mib(value: float | None) -> str:
    """A CUDA peak in MiB for a table cell; "-" where there is none (CPU runs)."""
    return "-" if value is None else f"{value:,.0f}"
