"""Task data of the MuJoCo locomotion families (their distributions: `envs.mujoco.families`).

A task batch is data: a frozen `metarl.tasks.TaskBatch` dataclass of float64 tensors with a
leading task axis `T`, validated when it is made (`__post_init__`), so a batch that exists is
valid. Envs read a batch as its parameter matrix `tasks.features(torch.float64)` `[T, P]`
(fields flattened in declaration order; numpy in the envs) and take it at reset:
`reset(options={"tasks": tasks})` on one env (`T = 1`) or on `BatchedMujocoEnv`. Slice with
`tasks.select(i)`. `coerce` also accepts a mapping of the fields (`{"angle_deg": 5.0}`).
Torch is only the carrier: MuJoCo steps on the CPU in float64.

Families, their sources and ranges (the env docstrings in `locomotion.py` give rewards):

| family | task | sampled range | source |
| --- | --- | --- | --- |
| HalfCheetahVel | target velocity (m/s) | U[0, 2] | MAML (Finn et al. 2017), ProMP (Rothfuss et al. 2019) |
| HalfCheetahDir | direction | {-1, +1} | MAML, ProMP |
| AntDir | heading angle (rad) | U[0, 2 pi) or {0, pi} | MAML (forward/backward), ProMP |
| AntGoal | goal (m) | uniform in a disc of radius 3 | PEARL (Rakelly et al. 2019) |
| *Slope, *Uphill | slope angle (deg) | see `SlopeDistribution` | this library |
| HalfCheetahTerrain | ramp + hills profile | see `TerrainDistribution` | this library |
| HalfCheetahTerrainPhysics | profile + friction, payload, motor strengths | `TerrainDistribution(physics=True)` | RMA (Kumar et al. 2021) |
| HalfCheetahTerrainPace | the above + target pace (m/s) | `TerrainDistribution(goal="pace")` | this library; pace as MAML's HalfCheetahVel |
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from metarl.errors import UsageError
from metarl.tasks import TaskBatch

_TaskT = TypeVar("_TaskT", bound="MujocoTask")

MAX_SLOPE_DEG = 30.0
"""Slopes must satisfy |angle| < 30 degrees: beyond it the robots cannot stand still."""
MAX_VELOCITY = 5.0
MAX_GOAL_RADIUS = 10.0
NUM_HILLS = 3
TERRAIN_MAX_GRADE = 0.3
TERRAIN_MAX_HILL = 0.5
PHYSICS_DIM = 8
"""Trailing features of a `TerrainPhysicsTask`: friction, payload, motor_strength (6)."""


class MujocoTask(TaskBatch):
    """Base of the MuJoCo task batches: what they add to `TaskBatch` (validation, `coerce`)."""

    family: ClassVar[str] = ""
    limits: ClassVar[dict[str, tuple[float, float]]] = {}
    """Closed ranges `[low, high]` of fields (checked by `validate`)."""
    abs_below: ClassVar[dict[str, float]] = {}
    """Open bounds `|field| < bound` (checked by `validate`)."""

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def coerce(cls: type[_TaskT], value: Any) -> _TaskT:
        """A task batch of this family from a batch or a mapping of its fields (validated)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise UsageError(
                f"task must be a {cls.__name__} or a dict of its fields; got {type(value).__name__}"
            )
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if sorted(value) != sorted(names):
            raise UsageError(
                f"task for {cls.family} needs exactly the keys {', '.join(names)}; got {', '.join(map(str, value))}"
            )
        try:
            vals = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in value.items()}
        except (TypeError, ValueError, RuntimeError):
            raise UsageError(f"task for {cls.family}: values must be numbers") from None
        # One task may be given without its task axis: a scalar, or `[K]` for a `[T, K]` field.
        if all(v.ndim < cls._field_ndim(k) for k, v in vals.items()):
            vals = {k: v[None] for k, v in vals.items()}
        return cls(**vals)

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 1

    def validate(self) -> None:
        """One-line `UsageError` unless every field is a finite tensor `[T]` / `[T, K]`, T >= 1."""
        lengths = set()
        for f in fields(self):  # type: ignore[arg-type]
            t = getattr(self, f.name)
            if not isinstance(t, torch.Tensor):
                raise UsageError(f"{self.family} task field {f.name} must be a tensor")
            if t.ndim != self._field_ndim(f.name):
                want = "[T]" if self._field_ndim(f.name) == 1 else "[T, K]"
                raise UsageError(
                    f"{self.family} task {f.name} must have shape {want}; got {list(t.shape)}"
                )
            if not torch.isfinite(t).all():
                raise UsageError(f"{self.family} task {f.name} must be finite (got NaN or inf)")
            lengths.add(t.shape[0])
        if len(lengths) != 1 or 0 in lengths:
            raise UsageError(f"{self.family} task fields need one common task count T >= 1")
        for name, (low, high) in self.limits.items():
            _check_range(name, getattr(self, name), low, high)
        for name, bound in self.abs_below.items():
            _check_range(name, getattr(self, name), -bound, bound, open_=True)


def _check_range(
    name: str, values: torch.Tensor, low: float, high: float, open_: bool = False
) -> None:
    bad = (values.abs() >= high) if open_ else ((values < low) | (values > high))
    if bad.any():
        rng = f"|{name}| < {high:g}" if open_ else f"[{low:g}, {high:g}]"
        raise UsageError(f"{name} must be in {rng}; got {values[bad][0].item():g}")


@dataclass(frozen=True)
class VelocityTask(MujocoTask):
    """HalfCheetahVel: `velocity [T]`, target forward velocity in m/s (valid |v| <= 5)."""

    velocity: torch.Tensor
    family: ClassVar[str] = "HalfCheetahVel"
    limits: ClassVar[dict[str, tuple[float, float]]] = {"velocity": (-MAX_VELOCITY, MAX_VELOCITY)}


@dataclass(frozen=True)
class DirectionTask(MujocoTask):
    """HalfCheetahDir: `direction [T]`, +1 run forward (+x), -1 run backward."""

    direction: torch.Tensor
    family: ClassVar[str] = "HalfCheetahDir"

    def validate(self) -> None:
        super().validate()
        if not ((self.direction == 1) | (self.direction == -1)).all():
            raise UsageError("direction must be +1 or -1")


@dataclass(frozen=True)
class HeadingTask(MujocoTask):
    """AntDir: `angle [T]` in radians; the ant is rewarded for velocity along (cos, sin)."""

    angle: torch.Tensor
    family: ClassVar[str] = "AntDir"


@dataclass(frozen=True)
class GoalTask(MujocoTask):
    """AntGoal: `goal [T, 2]`, the x-y goal in metres (valid norm <= 10)."""

    goal: torch.Tensor
    family: ClassVar[str] = "AntGoal"

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 2

    def validate(self) -> None:
        super().validate()
        if self.goal.ndim != 2 or self.goal.shape[1] != 2:
            raise UsageError(f"goal must have shape [T, 2]; got {list(self.goal.shape)}")
        _check_range("goal norm", self.goal.norm(dim=1), 0.0, MAX_GOAL_RADIUS)


@dataclass(frozen=True)
class SlopeTask(MujocoTask):
    """Slope: `angle_deg [T]`, the floor rises along +x by this angle (valid |angle| < 30)."""

    angle_deg: torch.Tensor
    family: ClassVar[str] = "Slope"
    abs_below: ClassVar[dict[str, float]] = {"angle_deg": MAX_SLOPE_DEG}


@dataclass(frozen=True)
class TerrainTask(MujocoTask):
    """HalfCheetahTerrain: a height profile h(x) along the running direction, in metres.

    h(x) = grade * clip(x - ramp_start, 0, ramp_length)
         + sum_k hill_height[k] * (1 + cos(pi (x - hill_center[k]) / hill_width[k])) / 2
               for |x - hill_center[k]| < hill_width[k],
    clipped to [-1, 1] m. A ramp rises (grade > 0) or falls, then levels into a plateau; hills
    (height > 0) and dips (< 0) are raised-cosine bumps of half-width `hill_width`.
    Fields: `ramp_start, ramp_length, ramp_grade [T]`; `hill_center, hill_height,
    hill_width [T, K]`. Valid: |grade| <= 0.3, ramp_length >= 0, |hill_height| <= 0.5,
    hill_width >= 0.2.
    """

    ramp_start: torch.Tensor
    ramp_length: torch.Tensor
    ramp_grade: torch.Tensor
    hill_center: torch.Tensor
    hill_height: torch.Tensor
    hill_width: torch.Tensor
    family: ClassVar[str] = "HalfCheetahTerrain"
    limits: ClassVar[dict[str, tuple[float, float]]] = {
        "ramp_grade": (-TERRAIN_MAX_GRADE, TERRAIN_MAX_GRADE),
        "ramp_length": (0.0, 1e3),
        "hill_height": (-TERRAIN_MAX_HILL, TERRAIN_MAX_HILL),
        "hill_width": (0.2, 1e3),
    }

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 2 if name.startswith("hill") else 1

    def validate(self) -> None:
        super().validate()
        shapes = {self.hill_center.shape, self.hill_height.shape, self.hill_width.shape}
        if len(shapes) != 1 or self.hill_center.ndim != 2:
            raise UsageError("hill_center, hill_height and hill_width must share one shape [T, K]")

    @staticmethod
    def heights(params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Profile h(x) `[len(x)]` of one task's parameter row `[3 + 3K]` (a row of
        `features(torch.float64)`), clipped to +-1 m."""
        start, length, grade = params[0], params[1], params[2]
        k = (params.shape[0] - 3) // 3
        centers, hs, widths = params[3 : 3 + k], params[3 + k : 3 + 2 * k], params[3 + 2 * k :]
        h = grade * np.clip(x - start, 0.0, length)
        for c, a, w in zip(centers, hs, widths, strict=False):
            u = (x - c) / w
            h = h + np.where(np.abs(u) < 1.0, a * 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)
        return np.clip(h, -1.0, 1.0)


@dataclass(frozen=True)
class TerrainPhysicsTask(TerrainTask):
    """HalfCheetahTerrainPhysics: a `TerrainTask` profile plus the robot's physics, as in RMA.

    Fields beyond the profile's: `friction [T]`, the scale of every geom's sliding friction
    (Gymnasium's is 0.4), in [0.01, 2]; `payload [T]`, kilograms added to the torso (6.25 kg of
    the cheetah's 14 kg; its inertia scales with its mass), in [0, 20]; `motor_strength [T, 6]`,
    the scale of each actuator's gear (bthigh, bshin, bfoot, fthigh, fshin, ffoot: 120, 90, 60,
    120, 60, 30 N m at |action| = 1), in [0, 2]. Features: the profile's `[3 + 3K]`, then these
    `PHYSICS_DIM = 8`. All persist for the whole trial, so the history of states and actions
    reveals them; the profile ahead of the robot it does not.
    """

    friction: torch.Tensor
    payload: torch.Tensor
    motor_strength: torch.Tensor
    family: ClassVar[str] = "HalfCheetahTerrainPhysics"
    limits: ClassVar[dict[str, tuple[float, float]]] = {
        **TerrainTask.limits,
        "friction": (0.01, 2.0),
        "payload": (0.0, 20.0),
        "motor_strength": (0.0, 2.0),
    }

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 2 if name.startswith("hill") or name == "motor_strength" else 1

    def validate(self) -> None:
        super().validate()
        if self.motor_strength.shape[1] != 6:
            raise UsageError(
                f"motor_strength must have shape [T, 6]; got {list(self.motor_strength.shape)}"
            )


@dataclass(frozen=True)
class TerrainPaceTask(TerrainPhysicsTask):
    """HalfCheetahTerrainPace: a `TerrainPhysicsTask` plus `velocity [T]`, the target pace in
    m/s (valid |v| <= 5) the reward asks the cheetah to hold over the profile. Features: the
    physics task's, then the pace (last)."""

    velocity: torch.Tensor
    family: ClassVar[str] = "HalfCheetahTerrainPace"
    limits: ClassVar[dict[str, tuple[float, float]]] = {
        **TerrainPhysicsTask.limits,
        "velocity": (-MAX_VELOCITY, MAX_VELOCITY),
    }
