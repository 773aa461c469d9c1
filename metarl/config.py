"""Run configuration: YAML files shipped in `metarl/configs/`, dotted overrides, validation.

A run config has four typed sections. `task` and `learner` pick a component by `kind` and are
validated against that component's dataclass (see `metarl.registry`), so an unknown key or a
wrong type is rejected with the valid choices before anything runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from metarl.errors import UsageError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    iterations: int = 1000
    """Number of meta-iterations (outer updates)."""
    num_tasks: int = 32
    """Tasks per meta-batch."""
    eval_interval: int = 200
    """Evaluate the adaptation curve on held-out tasks every this many iterations (0: never)."""
    checkpoint_interval: int = 200
    """Write `checkpoints/last.pt` every this many iterations (and at the end)."""
    log_interval: int = 10
    """Write training scalars to TensorBoard every this many iterations."""
    max_minutes: float = 0.0
    """Stop (and checkpoint) after this much training wall-clock; 0 for no limit."""


@dataclass
class EvalConfig:
    split: str = "val"
    """Held-out split for the curves during training."""
    num_tasks: int = 100
    """Held-out tasks per evaluation during training."""
    final_split: str = "test"
    """Split of the final evaluation written to results.json."""
    final_num_tasks: int = 1000
    """Held-out tasks of the final evaluation (1000 episodes is the few-shot convention)."""
    max_budget: int = 10
    """The curve covers budgets 0..max_budget (steps, shots or episodes)."""
    batch_tasks: int = 50
    """Tasks evaluated at once (memory, not results, depends on it)."""
    video: bool = True
    """At the final evaluation, film one held-out task before and after adaptation
    (TensorBoard `adapt/video`, `adapted.gif` in the run dir); renderable tasks only."""


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    task: dict[str, Any] = field(default_factory=dict)
    learner: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`; return it (ints widen to float). Raise UsageError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except UsageError:
                continue
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
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, where)
    else:
        return value
    raise UsageError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
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
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise UsageError(f"{path}: not valid YAML{at}; fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of sections at the top level")
    return data


# learner kind -> {key before format 2: key now} (one meaning per name)
RENAMED: dict[str, dict[str, str]] = {
    "maml": {"hidden": "conv_channels", "mlp_hidden": "hidden_sizes"},
    "protonet": {"hidden": "conv_channels"},
    "maml_rl": {"hidden": "hidden_sizes"},
}


def migrate_config(data: Any) -> Any:
    """A run config dict written before format 2 with its renamed learner keys updated
    (`RENAMED`); anything else is returned as it is."""
    if not isinstance(data, dict) or not isinstance(data.get("learner"), dict):
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
    """Human-readable differences between two nested config dicts."""
    out: list[str] = []
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
