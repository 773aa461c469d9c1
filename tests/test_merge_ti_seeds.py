"""scripts/merge_ti_seeds.py: per-seed closure and share of the oracle, from real row fields."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scripts import load_script


def _merge():
    return load_script("merge_ti_seeds").merge


def _seed(tmp: Path, seed: int, ti: float, blind: float, oracle: float) -> Path:
    names = ("task inference (history only); ...", "blind (same PPO)", "oracle (task)")
    rows = [
        {"family": "f (test)", "method": m, "mean": v, "seeds": [seed]}
        for m, v in zip(names, (ti, blind, oracle), strict=True)
    ]
    path = tmp / f"s{seed}.json"
    path.write_text(json.dumps({"argv": ["bench", str(seed)], "rows": rows}))
    return path


def test_closure_per_seed_and_undefined_when_blind_beats_the_oracle(tmp_path):
    md = _merge()([_seed(tmp_path, 0, 80.0, 40.0, 90.0), _seed(tmp_path, 1, 50.0, 70.0, 60.0)])
    assert "| 0 | 80.0 | 40.0 | 90.0 | +50.0 (+56%) | 0.80 | 89% | - |" in md
    assert "| 1 | 50.0 | 70.0 | 60.0 | -10.0 (-17%) | undefined (blind >= oracle) | 83% | - |" in md
    assert "1 of 2 seeds defined (mean 0.80) | 86% (min 83%) | - |" in md


def test_the_random_row_has_its_column_and_mean(tmp_path):
    paths = [_seed(tmp_path, 0, 80.0, 40.0, 90.0), _seed(tmp_path, 1, 60.0, 40.0, 70.0)]
    for path, value in zip(paths, (-10.0, -20.0), strict=True):
        data = json.loads(path.read_text())
        data["rows"].append(
            {
                "family": "f (test)",
                "method": "random (uniform actions)",
                "mean": value,
                "seeds": [data["rows"][0]["seeds"][0]],
            }
        )
        path.write_text(json.dumps(data))
    md = _merge()(paths)
    assert "| 0 | 80.0 | 40.0 | 90.0 | +50.0 (+56%) | 0.80 | 89% | -10.0 |" in md
    assert "2 of 2 seeds defined (mean 0.73) | 87% (min 86%) | -15.0 |" in md


def test_negative_returns_keep_the_margin_sign_and_drop_the_share(tmp_path):
    # Costs (navigation, pace): the oracle's margin is relative to |oracle|, the ratio
    # learner / oracle would read backwards and is left out, and a small margin is marked.
    paths = [_seed(tmp_path, 0, -130.0, -173.3, -126.7), _seed(tmp_path, 1, -100.0, -104.0, -96.0)]
    md = _merge()(paths)
    assert "| 0 | -130.0 | -173.3 | -126.7 | +46.6 (+37%) | 0.93 | - | - |" in md
    assert "| 1 | -100.0 | -104.0 | -96.0 | +8.0 (+8%) | 0.50 (gap under 15%) | - | - |" in md
    assert "2 of 2 seeds defined (mean 0.71) | - | - |" in md
