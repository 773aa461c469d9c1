"""The table of bad inputs (issue 10) with the exit code and the one line each prints.

Runs every case of `tests/cli_cases.py` through `metarl.cli.main` (what `python -m metarl`
runs; `--subprocess` starts a real `python -m metarl` per case instead) and writes markdown.

    python scripts/error_table.py --out results/errors.md
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metarl.cli import main as metarl_main  # noqa: E402
from tests.cli_cases import CASES, OMNIGLOT_DIR, train_argv  # noqa: E402


def run(argv: list[str], use_subprocess: bool) -> tuple[int, str]:
    if use_subprocess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        p = subprocess.run(
            [sys.executable, "-m", "metarl", *argv], capture_output=True, text=True, env=env
        )
        return p.returncode, p.stderr
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = metarl_main(argv)
    return rc, err.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--subprocess", action="store_true")
    args = p.parse_args()
    lines = [
        "# Bad inputs: exit code and the one line each prints",
        "",
        "Written by `python scripts/error_table.py --out results/errors.md` from the cases in",
        "`tests/cli_cases.py` (checked by `tests/test_cli_errors.py`). Exit 2: bad input, one",
        "line with what to do; exit 1: a run stopped on a non-finite value (every checkpoint",
        "kept is finite); exit 130: Ctrl-C / SIGTERM. Memory figures depend on the machine.",
        "",
        "| input | exit | message (temporary paths shown as TMP) |",
        "| --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as base:
        trained = Path(base) / "trained"
        rc, err = run(train_argv(trained, "eval.video=false"), args.subprocess)
        assert rc == 0, err
        for i, case in enumerate(CASES):
            if case.needs_omniglot and not (OMNIGLOT_DIR / "images_background.npz").is_file():
                continue
            tmp = Path(base) / f"case{i}"
            tmp.mkdir()
            argv = case.argv(tmp, trained)
            rc, err = run(argv, args.subprocess)
            message = err.strip().replace(str(tmp), "TMP").replace(str(trained), "TMP/run")
            message = message.replace(str(OMNIGLOT_DIR), "OMNIGLOT").replace("|", "\\|")
            ok = rc == case.rc and case.message in err and len(err.strip().splitlines()) == 1
            lines.append(f"| {case.what} | {rc}{'' if ok else ' (UNEXPECTED)'} | `{message}` |")
            print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
