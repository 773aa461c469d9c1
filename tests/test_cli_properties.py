"""Property: any config drawn from the schema, in range or not, well typed or not, and any
argument list either runs a tiny budget (exit 0; exit 1 only for a non-finite stop) or exits 2
with a single line; never a traceback, never beyond a time limit.

Values come from the config dataclasses' own annotations (`Range`, `Literal`, lists, unions):
in-range values are kept small so that every valid draw is a tiny run; the others go out of
range (below the bound, NaN, infinity, huge), change type (text, lists, booleans, mappings) or
break the syntax of an override.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import tempfile
import time
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from metarl.cli import main
from metarl.config import EvalConfig, Range, RunConfig, TrainConfig
from metarl.fewshot.maml import MAMLConfig
from metarl.fewshot.sinusoid import SinusoidConfig

SECONDS = 60.0
"""Time limit of one draw (a tiny run takes about a second on a loaded 2-core machine)."""

# Fields whose valid values are capped to keep a run tiny, and fields that stay fixed.
SMALL = {"iterations": 3, "num_tasks": 4, "final_num_tasks": 6, "batch_tasks": 6}
FIXED = {"device": "cpu", "eval_interval": None, "max_minutes": None, "video": None}
BIG_OK = {"train.num_tasks", "eval.batch_tasks"}  # huge is valid: the memory check refuses it

ILL_TYPED = st.sampled_from(["abc", "", "[1, 2]", "{a: 1}", "true", "null", "1.5.2", "[[]]"])


def _valid(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        rule = next(m for m in meta if isinstance(m, Range))
        low = rule.low if rule.low is not None else 0
        if base is int:
            return st.integers(int(low), int(low) + 2)
        hi = min(rule.high if rule.high is not None else 0.05, 0.05)
        return st.floats(max(low, 1e-4), max(hi, 1e-4), allow_nan=False)
    if origin in (typing.Union, typing.Optional) or str(origin) == "<class 'types.UnionType'>":
        return st.one_of([_valid(a) for a in typing.get_args(tp)])
    if tp is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin is list:
        (arg,) = typing.get_args(tp)
        return st.lists(_valid(arg), min_size=1, max_size=2)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 2)
    if tp is float:
        return st.floats(-1.0, 1.0, allow_nan=False)
    if tp is str:
        return st.sampled_from(["val", "test", "train", "x"])
    raise AssertionError(f"no strategy for {tp}")


def _invalid(tp: Any, key: str) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    bad: list[st.SearchStrategy[Any]] = [ILL_TYPED]
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        rule = next(m for m in meta if isinstance(m, Range))
        if rule.low is not None:
            bad.append(st.sampled_from([rule.low - 1, rule.low - 1e-3 if base is float else -7]))
        bad.append(st.sampled_from([".nan", "-.inf", "nan", "-1e400"]))
        if key in BIG_OK:
            bad.append(st.sampled_from([10**12, "1e15"]))
        if base is int:
            bad.append(st.sampled_from([2.5, "1e-3"]))
    elif origin is Literal:
        bad.append(st.sampled_from(["nope", 7]))
    elif tp is bool:
        bad.append(st.sampled_from([3, "maybe"]))
    return st.one_of(bad)


def _fields() -> list[tuple[str, Any]]:
    out = []
    for section, cls in (("train", TrainConfig), ("eval", EvalConfig)):
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            if f.name not in FIXED:
                out.append((f"{section}.{f.name}", hints[f.name]))
    for section, cls in (("learner", MAMLConfig), ("task", SinusoidConfig)):
        hints = typing.get_type_hints(cls, include_extras=True)
        out += [(f"{section}.{f.name}", hints[f.name]) for f in dataclasses.fields(cls)]
    out.append(("seed", typing.get_type_hints(RunConfig, include_extras=True)["seed"]))
    return out


FIELDS = _fields()


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _cap(key: str, value: Any) -> Any:
    name = key.split(".")[-1]
    if name in SMALL and isinstance(value, int) and not isinstance(value, bool):
        return min(value, SMALL[name])
    return value


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique_by=lambda f: f[0]))
    all_valid = draw(st.booleans())  # half the draws are valid configs: tiny runs
    out = []
    for key, tp in chosen:
        if all_valid or draw(st.booleans()):
            out.append(f"{key}={_render(_cap(key, draw(_valid(tp))))}")
        else:
            out.append(f"{key}={_render(draw(_invalid(tp, key)))}")
    if not all_valid and draw(st.integers(0, 4)) == 0:  # broken syntax or unknown keys
        out.append(draw(st.sampled_from(["train.iterations", "nosuch.key=1", "=3", "train.=1"])))
    return out


BASE = [
    "device=cpu",
    "train.iterations=2",
    "train.num_tasks=3",
    "train.eval_interval=0",
    "eval.final_num_tasks=4",
    "eval.batch_tasks=4",
    "eval.max_budget=2",
]


@st.composite
def argv(draw: st.DrawFn, run_dir: Path) -> list[str]:
    command = draw(st.sampled_from(["train"] * 7 + ["eval", "resume", "plot"]))
    if command == "train":
        args = ["train", "sinusoid_maml", *BASE, *draw(overrides())]
        args += ["--run-dir", str(run_dir), "--no-progress"]
    else:
        target = draw(st.sampled_from([str(run_dir), str(run_dir / "config.yaml"), "/sys"]))
        args = [command, target]
    if command == "train" and draw(st.booleans()):
        return args
    extra = draw(
        st.lists(
            st.sampled_from(
                [["--threads", "0"], ["--threads", "x"], ["--bogus"], ["--num-tasks", "-1"]]
            ),
            max_size=1,
        )
    )
    return args + [x for e in extra for x in e]


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same draws on every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_drawn_config_runs_tiny_or_exits_2_with_one_line(data):
    with tempfile.TemporaryDirectory() as tmp:
        args = data.draw(argv(Path(tmp) / "run"))
        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(args)
            except SystemExit as exc:  # argparse
                rc = exc.code
        seconds = time.perf_counter() - start
    lines = err.getvalue().strip().splitlines()
    event(f"exit {rc}")  # pytest --hypothesis-show-statistics: how many ran, how many refused
    assert seconds < SECONDS, args
    assert "Traceback" not in err.getvalue(), (args, err.getvalue())
    if rc == 0:
        assert "Adaptation curve" in out.getvalue(), args
    elif rc == 1:
        assert len(lines) == 1 and "non-finite" in lines[0], (args, lines)
    else:
        assert rc == 2 and len(lines) == 1, (args, rc, lines)
        assert lines[0].startswith("metarl") and ": error: " in lines[0], lines
