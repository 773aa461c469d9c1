"""Bit-exact records of seeded runs, one per CPU kind they were recorded on.

A float computation is reproducible to the bit on one machine, not across CPUs: vectorised
kernels (AVX2 vs AVX-512) sum in another order, and so do 1 and 2 torch threads on some
CPUs (the suite runs both: some tests pin one thread), and a few training steps amplify the
last bit. A record (`mean`, `ci95`) is the curve of the code it guards on the CPU it was made on;
`other_cpus` holds the same runs' curves from other CPU kinds, each made by code that equalled
the first record on the first CPU (so every record is the guarded code's, not a new result).
A run passes when it equals one record to the bit. `scripts/record_golden_cpu.py` adds this
machine's records."""

from __future__ import annotations

import platform
from typing import Any


def cpu_kind() -> str:
    """This CPU's model name and widest vector extension, e.g. `Intel(R) Xeon(R) | avx512f`."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:  # not Linux: the machine type and no flags
        pass
    model = model or platform.processor() or platform.machine()
    isa = next((x for x in ("avx512f", "avx2", "avx") if f" {x} " in f" {flags} "), "other")
    return f"{model} | {isa}"


def records(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's records: the first one, then those of other CPUs."""
    return [{"mean": run["mean"], "ci95": run.get("ci95")}, *run.get("other_cpus", [])]


def equals_a_record(curve: dict[str, Any], run: dict[str, Any], keys=("mean", "ci95")) -> bool:
    """True when `curve` equals one of the run's records to the bit in every key."""
    return any(all(curve[k] == rec[k] for k in keys) for rec in records(run))
