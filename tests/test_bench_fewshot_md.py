"""`scripts/bench_fewshot.py` rewrites its own part of results/fewshot.md and keeps the part
`scripts/bench_fewshot_families.py` writes after it (and the notes written below that)."""

from __future__ import annotations

import sys

from tests.scripts import load_script


def test_rewriting_keeps_the_families_section_and_what_follows(tmp_path, monkeypatch):
    md, out = tmp_path / "fewshot.md", tmp_path / "fewshot.json"
    kept = "<!-- families:begin -->\n## MANN rows\n<!-- families:end -->\n\n## Session 9 notes\n"
    md.write_text("# stale table\n\n" + kept)
    script = load_script("bench_fewshot")
    argv = ["--only", "metric", "--learners", "matching", "--runs", str(tmp_path / "none")]
    argv += ["--reuse-only", "--out", str(out), "--md", str(md)]
    monkeypatch.setattr(sys, "argv", ["bench_fewshot.py", *argv])
    script.main()
    text = md.read_text()
    assert "# stale table" not in text  # its own part is written anew
    assert text.endswith(kept) and text.count("families:begin") == 1
