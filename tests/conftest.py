"""Shared fixtures. Keep small: only what several test files need."""

from __future__ import annotations

from pathlib import Path

import pytest

import metarl  # noqa: F401  (selects headless EGL before any test module imports mujoco)

# CI clones the repository with shared/ beside it; the offline Omniglot copy lives there.
OMNIGLOT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"


@pytest.fixture(scope="session")
def omniglot_dir() -> Path:
    """The offline Omniglot copy (.npz arrays, alphabets.csv, Vinyals splits, a sample zip)."""
    if not (OMNIGLOT_DIR / "images_background.npz").is_file():
        pytest.skip(
            f"offline Omniglot copy not found at {OMNIGLOT_DIR} (clone shared/ beside the repo)"
        )
    return OMNIGLOT_DIR


@pytest.fixture(scope="session")
def omniglot(omniglot_dir: Path):
    """All of Omniglot at 28x28, loaded once per session.

    Uses the normal cache (`$METARL_CACHE`, else ~/.cache/metarl), shared with CLI runs: a
    few seconds the first time on a machine, well under one afterwards.
    """
    from metarl.fewshot.omniglot import load_omniglot

    return load_omniglot(omniglot_dir, 28)
