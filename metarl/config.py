"""Run configuration: YAML files shipped in `metarl/configs/`, dotted overrides, validation.

A run config has four typed sections. `task` and `learner` pick a component by `kind` and are
validated against that component's dataclass (see `metarl.registry`), so an unknown key, a
wrong type or a value out of range is rejected with the valid choices before anything runs.

A numeric field declares its range in its annotation, beside its docstring:

    num_tasks: PositiveInt = 32                        # an int >= 1
    inner_lr: PositiveFloat = 0.4                      # a finite float > 0
    gamma: Annotated[float, Range(0.0, 1.0)] = 0.99    # in [0, 1]

`from_dict` checks it once, when a config is loaded, so every learner and task family gets the
check for free. Every float must be finite unless its `Range` allows infinity. Numbers parse as
a person writes them: YAML 1.1 reads `1e-3`, `1E-3` and `1e30` as strings, so strings are
read with Python's `float` where a number is expected (`1e-3`, `.5`, `-2`, `inf`), and an int
field takes any integral number (`1e3`, `1000.0`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from metarl.errors import DataError, UsageError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: `low <= x <= high` (`<` with `low_open` / `high_open`);
    None leaves a side unbounded. Infinity passes only with `allow_inf` (NaN never does)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False

    def describe(self, kind: str) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        bounds = " and ".join(parts)
        finite = "" if kind == "integer" or self.allow_inf else "finite "
        text = f"{finite}{kind}" + (f" {bounds}" if bounds else "")
        return ("an " if text[0] in "aeiou" else "a ") + text

    def contains(self, x: float) -> bool:
        if math.isnan(x) or (math.isinf(x) and not self.allow_inf):
            return False
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or (x < self.high if self.high_open else x <= self.high)


FINITE = Range()
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0.0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(0.0)]
UnitInterval = Annotated[float, Range(0.0, 1.0)]
"""[0, 1], e.g. a discount or a GAE lambda."""
OpenUnitInterval = Annotated[float, Range(0.0, 1.0, low_open=True, high_open=True)]
"""(0, 1), e.g. a fraction of classes held out."""


@dataclass
class TrainConfig:
    iterations: PositiveInt = 1000
    """Number of meta-iterations (outer updates)."""
    num_tasks: PositiveInt = 32
    """Tasks per meta-batch."""
    eval_interval: NonNegativeInt = 200
    """Evaluate the adaptation curve on held-out tasks every this many iterations (0: never)."""
    checkpoint_interval: PositiveInt = 200
    """Write `checkpoints/last.pt` every this many iterations (and at the end)."""
    log_interval: PositiveInt = 10
    """Write training scalars to TensorBoard every this many iterations."""
    max_minutes: Annotated[float, Range(0.0, allow_inf=True)] = 0.0
    """Stop (and checkpoint) after this much training wall-clock; 0 (or inf) for no limit."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Few-shot learners: bf16 runs meta-steps and evaluation under bfloat16 autocast
    (`metarl.precision`); fp32 everywhere else."""


@dataclass
class EvalConfig:
    split: str = "val"
    """Held-out split for the curves during training."""
    num_tasks: PositiveInt = 100
    """Held-out tasks per evaluation during training."""
    final_split: str = "test"
    """Split of the final evaluation written to results.json."""
    final_num_tasks: PositiveInt = 1000
    """Held-out tasks of the final evaluation (1000 episodes is the few-shot convention)."""
    max_budget: NonNegativeInt = 10
    """The curve covers budgets 0..max_budget (steps, shots or episodes)."""
    batch_tasks: PositiveInt = 50
    """Tasks evaluated at once (memory, not results, depends on it)."""
    video: bool = True
    """At the final evaluation, film one held-out task before and after adaptation
    (TensorBoard `adapt/video`, `adapted.gif` in the run dir); renderable tasks only."""


@dataclass
class RunConfig:
    name: str = "run"
    seed: NonNegativeInt = 0
    """Run seed: every random stream (tasks, initialisation, evaluation) derives from it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    task: dict[str, Any] = field(default_factory=dict)
    learner: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        ranges = [m for m in meta if isinstance(m, Range)]
        kind = "integer" if base is int else "number"
        return ranges[0].describe(kind) if ranges else _type_name(base)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _as_number(value: Any) -> float | int | None:
    """`value` as a person means it: an int or float as is, a numeric string (`1e-3`, `.5`,
    `inf`; YAML 1.1 leaves these as strings) through `float`; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(".inf", "inf").replace(".nan", "nan")
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`; return it (numbers parsed and widened, see the
    module docstring). Raise UsageError naming the field and what it accepts."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        if base is float and any(isinstance(m, Range) for m in meta):
            number = _as_number(value)  # the Range, not the float rule, decides on infinity
            if number is None:
                raise UsageError(f"{where}: expected float, got {value!r}")
            value = float(number)
        else:
            value = _coerce(value, base, where)
        for rule in meta:
            if isinstance(rule, Range) and not rule.contains(value):
                kind = "integer" if base is int else "number"
                raise UsageError(f"{where}={value!r} is out of range; use {rule.describe(kind)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, where)
            except UsageError as exc:
                errors.append(exc)
        out_of_range = [e for e in errors if "out of range" in str(e)]
        if out_of_range:  # the value has the right type: say which range it missed
            raise out_of_range[0]
        raise UsageError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
        choices = ", ".join(repr(a) for a in typing.get_args(tp))
        raise UsageError(f"{where}: {value!r} is not valid; choose one of {choices}")
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (arg,) = typing.get_args(tp)[:1] or (Any,)
            items = [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if origin is list else tuple(items)
    elif origin is dict:
        if isinstance(value, dict):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        number = _as_number(value)
        if isinstance(number, int):
            return number
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
        if isinstance(number, float):
            raise UsageError(f"{where}: expected an integer, got {value!r}")
    elif tp is float:
        number = _as_number(value)
        if number is not None:
            number = float(number)
            if not FINITE.contains(number):
                raise UsageError(f"{where}={number!r} is out of range; use a finite number")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, where)
    else:
        return value
    raise UsageError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """`value` checked and parsed against annotation `tp` (e.g. `PositiveInt`) for `where`."""
    return _coerce(value, tp, where)


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys, wrong types and values out of
    their declared `Range`."""
    if not isinstance(data, dict):
        raise UsageError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise UsageError(
                f"unknown config key {where}.{key}; valid keys: {', '.join(names)}".replace(
                    "unknown config key .", "unknown config key "
                )
            )
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}".lstrip("."))
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    is_instance = dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    return dataclasses.asdict(obj) if is_instance else obj


def config_path(name_or_path: str) -> Path:
    """A shipped config by name (`omniglot_protonet_5w1s`) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    shipped = CONFIG_DIR / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if shipped.exists():
        return shipped
    raise UsageError(
        f"no config {name_or_path!r}: not a YAML file and not a shipped config "
        f"(run `metarl list` to see the shipped ones)"
    )


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`learner.inner_lr=0.4` -> (["learner", "inner_lr"], 0.4); values parse as YAML."""
    if "=" not in text:
        raise UsageError(
            f"override {text!r} must look like section.key=value, e.g. train.iterations=100"
        )
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise UsageError(f"override {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return data


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`; DataError naming the file for broken or tagged YAML (safe
    loading: `!!python/...` tags are refused, never run) and for a file that is not text."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise DataError(f"{path}: not valid YAML{at}; fix the file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; give a YAML config") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of sections at the top level")
    return data


# learner kind -> {key before format 2: key now} (one meaning per name)
RENAMED: dict[str, dict[str, str]] = {
    "maml": {"hidden": "conv_channels", "mlp_hidden": "hidden_sizes"},
    "protonet": {"hidden": "conv_channels"},
    "maml_rl": {"hidden": "hidden_sizes"},
}


def migrate_config(data: Any) -> Any:
    """A run config dict written before format 2 with its renamed learner keys updated
    (`RENAMED`), and `train.precision: fp32` where it predates that field; anything else is
    returned as it is."""
    if not isinstance(data, dict):
        return data
    train = data.get("train")
    if isinstance(train, dict) and "precision" not in train:  # written before the field
        data = {**data, "train": {**train, "precision": "fp32"}}
    if not isinstance(data.get("learner"), dict):
        return data
    learner = data["learner"]
    renames = RENAMED.get(learner.get("kind"), {})
    if not any(k in learner for k in renames):
        return data
    return {**data, "learner": {renames.get(k, k): v for k, v in learner.items()}}


def renamed_key_hint(kind: Any, key: str) -> str:
    """`; it was renamed to learner.X` where `key` is a pre-format-2 name of `kind`."""
    new = RENAMED.get(kind, {}).get(key) if isinstance(kind, str) else None
    return f" (renamed: use learner.{new})" if new else ""


def diff_configs(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested config dicts. A tuple and a list with
    the same items are equal (YAML has no tuples: `config.yaml` reads back tuple-typed fields,
    e.g. `task.test_band_deg`, as lists)."""
    out: list[str] = []
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a:
                out.append(f"{where}: (absent) -> {b[key]!r}")
            elif key not in b:
                out.append(f"{where}: {a[key]!r} -> (absent)")
            else:
                out.extend(diff_configs(a[key], b[key], where))
    elif a != b:
        out.append(f"{prefix}: {a!r} -> {b!r}")
    return out
