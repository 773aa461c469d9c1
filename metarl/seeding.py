"""Explicit randomness: every random draw comes from a generator derived from the run seed."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

import torch


def derive_seed(seed: int, name: str) -> int:
    """A stable sub-seed for the stream called `name` (same seed and name -> same stream)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def make_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, name))
    return gen


@contextlib.contextmanager
def seeded(seed: int, name: str) -> Iterator[None]:
    """Run a block (e.g. `nn.Module` construction) on a seeded global RNG, then restore it.

    Module initialisers draw from torch's global generator; this makes them reproducible from
    the run seed without leaving the global state changed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, name))
        yield
