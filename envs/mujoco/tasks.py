"""Task data and task distributions of the MuJoCo locomotion families.

A task is data: a frozen dataclass of float64 tensors with a leading task axis `T`, sampled
with an explicit `torch.Generator`. Every task class flattens to a parameter matrix
`params() -> np.ndarray [T, P]` that the environments read (`reset(options={"task": ...})` on
one env, `BatchedMujocoEnv.reset(options={"task": ...})` on many). Torch is only the carrier:
MuJoCo steps on the CPU in float64.

Families, their sources and ranges (the env docstrings in `locomotion.py` give rewards):

| family | task | sampled range | source |
| --- | --- | --- | --- |
| HalfCheetahVel | target velocity (m/s) | U[0, 2] | MAML (Finn et al. 2017), ProMP (Rothfuss et al. 2019) |
| HalfCheetahDir | direction | {-1, +1} | MAML, ProMP |
| AntDir | heading angle (rad) | U[0, 2 pi) or {0, pi} | MAML (forward/backward), ProMP |
| AntGoal | goal (m) | uniform in a disc of radius 3 | PEARL (Rakelly et al. 2019) |
| *Slope | slope angle (deg) | see `SlopeDistribution` | this library |
| HalfCheetahTerrain | ramp + hills profile | see `TerrainDistribution` | this library |

Splits. For the benchmark families (velocity, direction, goal) the papers draw train and test
tasks from one distribution, so all splits share the range and differ only by the draws
(HalfCheetahDir has just two tasks). Slope and terrain hold out parameter bands, inside the
training range (`val`, `test`) and beyond it (`test_beyond`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from metarl.contracts import check_split
from metarl.errors import UsageError

SPLITS = ("train", "val", "test")
SLOPE_SPLITS = ("train", "val", "test", "test_beyond")

MAX_SLOPE_DEG = 30.0
"""Slopes must satisfy |angle| < 30 degrees: beyond it the robots cannot stand still."""
MAX_VELOCITY = 5.0
MAX_GOAL_RADIUS = 10.0
NUM_HILLS = 3
TERRAIN_MAX_GRADE = 0.3
TERRAIN_MAX_HILL = 0.5


@dataclass(frozen=True)
class _TaskBase:
    """Shared helpers: a frozen dataclass of tensors `[T]` or `[T, K]`."""

    family: ClassVar[str] = ""

    @property
    def num_tasks(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])

    def params(self) -> np.ndarray:
        """Flattened float64 parameters `[T, P]` (fields in declaration order)."""
        cols = [
            getattr(self, f.name).detach().cpu().double().reshape(self.num_tasks, -1)
            for f in fields(self)
        ]
        return torch.cat(cols, dim=1).numpy()

    def __getitem__(self, index: int | slice) -> Any:
        """One task (`T == 1`) or a slice, keeping the task axis."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        if isinstance(index, int) and not -self.num_tasks <= index < self.num_tasks:
            raise UsageError(f"task index {index} out of range [0, {self.num_tasks})")
        if isinstance(index, int) and index < 0:
            sl = slice(self.num_tasks + index, self.num_tasks + index + 1)
        return type(self)(**{f.name: getattr(self, f.name)[sl] for f in fields(self)})

    def to(self, device: torch.device | str) -> Any:
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @classmethod
    def coerce(cls, value: Any) -> Any:
        """A task of this family from a task instance or a mapping of its fields; validated."""
        if isinstance(value, cls):
            task = value
        elif isinstance(value, dict):
            names = [f.name for f in fields(cls)]
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
            task = cls(**vals)
        else:
            raise UsageError(
                f"task must be a {cls.__name__} or a dict of its fields; got {type(value).__name__}"
            )
        task.validate()
        return task

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 1

    def validate(self) -> None:
        lengths = set()
        for f in fields(self):
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


def _check_range(
    name: str, values: torch.Tensor, low: float, high: float, open_: bool = False
) -> None:
    bad = (values.abs() >= high) if open_ else ((values < low) | (values > high))
    if bad.any():
        rng = f"|{name}| < {high:g}" if open_ else f"[{low:g}, {high:g}]"
        raise UsageError(f"{name} must be in {rng}; got {values[bad][0].item():g}")


@dataclass(frozen=True)
class VelocityTask(_TaskBase):
    """HalfCheetahVel: `velocity [T]`, target forward velocity in m/s (valid |v| <= 5)."""

    velocity: torch.Tensor
    family: ClassVar[str] = "HalfCheetahVel"

    def validate(self) -> None:
        super().validate()
        _check_range("velocity", self.velocity, -MAX_VELOCITY, MAX_VELOCITY)


@dataclass(frozen=True)
class DirectionTask(_TaskBase):
    """HalfCheetahDir: `direction [T]`, +1 run forward (+x), -1 run backward."""

    direction: torch.Tensor
    family: ClassVar[str] = "HalfCheetahDir"

    def validate(self) -> None:
        super().validate()
        if not ((self.direction == 1) | (self.direction == -1)).all():
            raise UsageError("direction must be +1 or -1")


@dataclass(frozen=True)
class HeadingTask(_TaskBase):
    """AntDir: `angle [T]` in radians; the ant is rewarded for velocity along (cos, sin)."""

    angle: torch.Tensor
    family: ClassVar[str] = "AntDir"


@dataclass(frozen=True)
class GoalTask(_TaskBase):
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
class SlopeTask(_TaskBase):
    """Slope: `angle_deg [T]`, the floor rises along +x by this angle (valid |angle| < 30)."""

    angle_deg: torch.Tensor
    family: ClassVar[str] = "Slope"

    def validate(self) -> None:
        super().validate()
        _check_range("angle_deg", self.angle_deg, -MAX_SLOPE_DEG, MAX_SLOPE_DEG, open_=True)


@dataclass(frozen=True)
class TerrainTask(_TaskBase):
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

    @classmethod
    def _field_ndim(cls, name: str) -> int:
        return 2 if name.startswith("hill") else 1

    def validate(self) -> None:
        super().validate()
        shapes = {self.hill_center.shape, self.hill_height.shape, self.hill_width.shape}
        if len(shapes) != 1 or self.hill_center.ndim != 2:
            raise UsageError("hill_center, hill_height and hill_width must share one shape [T, K]")
        _check_range("ramp_grade", self.ramp_grade, -TERRAIN_MAX_GRADE, TERRAIN_MAX_GRADE)
        _check_range("ramp_length", self.ramp_length, 0.0, 1e3)
        _check_range("hill_height", self.hill_height, -TERRAIN_MAX_HILL, TERRAIN_MAX_HILL)
        _check_range("hill_width", self.hill_width, 0.2, 1e3)

    @staticmethod
    def heights(params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Profile h(x) `[len(x)]` of one task's flat parameters `[3 + 3K]`, clipped to +-1 m."""
        start, length, grade = params[0], params[1], params[2]
        k = (params.shape[0] - 3) // 3
        centers, hs, widths = params[3 : 3 + k], params[3 + k : 3 + 2 * k], params[3 + 2 * k :]
        h = grade * np.clip(x - start, 0.0, length)
        for c, a, w in zip(centers, hs, widths, strict=False):
            u = (x - c) / w
            h = h + np.where(np.abs(u) < 1.0, a * 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)
        return np.clip(h, -1.0, 1.0)


# --- sampling helpers -------------------------------------------------------------------------


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64, device=g.device)


def _union(n: int, intervals: list[tuple[float, float]], g: torch.Generator) -> torch.Tensor:
    """Uniform on a union of disjoint intervals `[(lo, hi), ...]`, without rejection. `[n]`."""
    lo = torch.tensor([a for a, _ in intervals], dtype=torch.float64, device=g.device)
    length = torch.tensor([b - a for a, b in intervals], dtype=torch.float64, device=g.device)
    ends = length.cumsum(0)
    u = torch.rand(n, generator=g, dtype=torch.float64, device=g.device) * ends[-1]
    idx = torch.searchsorted(ends, u, right=True).clamp(max=len(intervals) - 1)
    return lo[idx] + u - (ends[idx] - length[idx])


def _symmetric(band: tuple[float, float]) -> list[tuple[float, float]]:
    return [(-band[1], -band[0]), (band[0], band[1])]


def _check_num(num_tasks: int) -> None:
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise UsageError(f"num_tasks must be a positive integer; got {num_tasks!r}")


# --- distributions ----------------------------------------------------------------------------


class HalfCheetahVelDistribution:
    """Target velocity U[low, high] m/s (MAML / ProMP: U[0, 2]); all splits share the range."""

    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    env_id = "metarl/HalfCheetahVel-v0"
    splits = SPLITS

    def __init__(self, low: float = 0.0, high: float = 2.0, device: torch.device | str = "cpu"):
        if not -MAX_VELOCITY <= low <= high <= MAX_VELOCITY:
            raise UsageError(
                f"velocity range must satisfy -5 <= low <= high <= 5; got [{low}, {high}]"
            )
        self.low, self.high, self.device = low, high, torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> VelocityTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        return VelocityTask(_uniform(num_tasks, self.low, self.high, generator).to(self.device))


class HalfCheetahDirDistribution:
    """Direction +1 or -1 with probability 1/2 (MAML / ProMP forward-backward cheetah)."""

    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    env_id = "metarl/HalfCheetahDir-v0"
    splits = SPLITS

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> DirectionTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        bits = torch.randint(0, 2, (num_tasks,), generator=generator, device=generator.device)
        return DirectionTask((2.0 * bits - 1.0).double().to(self.device))


class AntDirDistribution:
    """Heading angle U[0, 2 pi) (2-D directions), or {0, pi} when `forward_backward` (MAML)."""

    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    env_id = "metarl/AntDir-v0"
    splits = SPLITS

    def __init__(self, forward_backward: bool = False, device: torch.device | str = "cpu"):
        self.forward_backward, self.device = forward_backward, torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> HeadingTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        if self.forward_backward:
            bits = torch.randint(0, 2, (num_tasks,), generator=generator, device=generator.device)
            angle = bits.double() * math.pi
        else:
            angle = _uniform(num_tasks, 0.0, 2 * math.pi, generator)
        return HeadingTask(angle.to(self.device))


class AntGoalDistribution:
    """Goal uniform in a disc of radius `radius` (PEARL: 3): r = R sqrt(u), angle U[0, 2 pi)."""

    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    env_id = "metarl/AntGoal-v0"
    splits = SPLITS

    def __init__(self, radius: float = 3.0, device: torch.device | str = "cpu"):
        if not 0.0 < radius <= MAX_GOAL_RADIUS:
            raise UsageError(f"radius must be in (0, 10]; got {radius}")
        self.radius, self.device = radius, torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> GoalTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        r = self.radius * _uniform(num_tasks, 0.0, 1.0, generator).sqrt()
        a = _uniform(num_tasks, 0.0, 2 * math.pi, generator)
        return GoalTask(torch.stack([r * a.cos(), r * a.sin()], dim=1).to(self.device))


class SlopeDistribution:
    """Slope angle in degrees, with held-out bands inside and beyond the training range.

    With the defaults (both signs, i.e. uphill and downhill):
    - `train`: U over [-10, 10] minus the `val` and `test` bands;
    - `val`: |angle| in [2.5, 3.5]; `test`: |angle| in [6.5, 7.5] (unseen, inside the range);
    - `test_beyond`: |angle| in [12, 20] (unseen, outside the training range).
    """

    splits = SLOPE_SPLITS
    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour

    def __init__(
        self,
        robot: Literal["half_cheetah", "ant"] = "half_cheetah",
        train_max_deg: float = 10.0,
        val_band_deg: tuple[float, float] = (2.5, 3.5),
        test_band_deg: tuple[float, float] = (6.5, 7.5),
        beyond_band_deg: tuple[float, float] = (12.0, 20.0),
        device: torch.device | str = "cpu",
    ):
        if robot not in ("half_cheetah", "ant"):
            raise UsageError(f"robot must be 'half_cheetah' or 'ant'; got {robot!r}")
        v, t, b = tuple(val_band_deg), tuple(test_band_deg), tuple(beyond_band_deg)
        ok = (
            0 <= v[0] < v[1] <= train_max_deg
            and 0 <= t[0] < t[1] <= train_max_deg
            and (v[1] <= t[0] or t[1] <= v[0])
            and train_max_deg <= b[0] < b[1] < MAX_SLOPE_DEG
        )
        if not ok:
            raise UsageError(
                "slope bands must satisfy 0 <= val, test bands <= train_max_deg (disjoint) "
                f"<= beyond band < 30 degrees; got val={v}, test={t}, train_max={train_max_deg}, beyond={b}"
            )
        self.robot, self.device = robot, torch.device(device)
        self.env_id = (
            "metarl/HalfCheetahSlope-v0" if robot == "half_cheetah" else "metarl/AntSlope-v0"
        )
        holes = sorted([v, t])
        edges = [-train_max_deg] + [e for h in reversed(holes) for e in (-h[1], -h[0])]
        edges += [e for h in holes for e in h] + [train_max_deg]
        train = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
        self.intervals = {
            "train": [iv for iv in train if iv[1] > iv[0]],
            "val": _symmetric(v),
            "test": _symmetric(t),
            "test_beyond": _symmetric(b),
        }

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> SlopeTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        return SlopeTask(_union(num_tasks, self.intervals[split], generator).to(self.device))


class TerrainDistribution:
    """Ramp-and-hills profiles for HalfCheetahTerrain (see `TerrainTask` for h(x)).

    `train`/`val`/`test` share the ranges (independent draws): ramp_start U[2, 10] m,
    ramp_length U[2, 8] m, ramp_grade U[-0.1, 0.1], `num_hills` hills with centre U[4, 30] m,
    height U[-0.2, 0.2] m, half-width U[0.5, 2] m. `test_beyond` is harsher than anything
    trained on: |ramp_grade| in [0.12, 0.2] and |hill_height| in [0.2, 0.3] (either sign).
    The first 2 m are always flat, so the robot starts on level ground.
    """

    renderable = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    env_id = "metarl/HalfCheetahTerrain-v0"
    splits = SLOPE_SPLITS

    def __init__(self, num_hills: int = NUM_HILLS, device: torch.device | str = "cpu"):
        if not isinstance(num_hills, int) or not 0 <= num_hills <= 10:
            raise UsageError(f"num_hills must be an integer in [0, 10]; got {num_hills!r}")
        self.num_hills, self.device = num_hills, torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> TerrainTask:
        check_split(split, self.splits)
        _check_num(num_tasks)
        n, k, g = num_tasks, self.num_hills, generator
        start, length = _uniform(n, 2.0, 10.0, g), _uniform(n, 2.0, 8.0, g)
        centers = _uniform(n * k, 4.0, 30.0, g).reshape(n, k)
        widths = _uniform(n * k, 0.5, 2.0, g).reshape(n, k)
        if split == "test_beyond":
            grade = _union(n, _symmetric((0.12, 0.2)), g)
            heights = _union(n * k, _symmetric((0.2, 0.3)), g).reshape(n, k)
        else:
            grade = _uniform(n, -0.1, 0.1, g)
            heights = _uniform(n * k, -0.2, 0.2, g).reshape(n, k)
        task = TerrainTask(start, length, grade, centers, heights, widths)
        return task.to(self.device)


# --- configs and builders for `metarl.registry` --------------------------------------------------


@dataclass
class HalfCheetahVelConfig:
    low: float = 0.0
    """Lowest target velocity (m/s)."""
    high: float = 2.0
    """Highest target velocity (m/s)."""


@dataclass
class HalfCheetahDirConfig:
    pass


@dataclass
class AntDirConfig:
    forward_backward: bool = False
    """Sample only forward (0) or backward (pi) headings, as MAML's ant task; else U[0, 2 pi)."""


@dataclass
class AntGoalConfig:
    radius: float = 3.0
    """Radius (m) of the disc of goals."""


@dataclass
class SlopeConfig:
    robot: Literal["half_cheetah", "ant"] = "half_cheetah"
    """Which robot walks the slope."""
    train_max_deg: float = 10.0
    """Training angles lie in [-train_max_deg, train_max_deg] minus the held-out bands."""
    val_band_deg: tuple[float, float] = (2.5, 3.5)
    """|angle| band of the `val` split (held out from training)."""
    test_band_deg: tuple[float, float] = (6.5, 7.5)
    """|angle| band of the `test` split (held out from training)."""
    beyond_band_deg: tuple[float, float] = (12.0, 20.0)
    """|angle| band of `test_beyond`, outside the training range (must stay below 30)."""


@dataclass
class TerrainConfig:
    num_hills: int = NUM_HILLS
    """Raised-cosine hills or dips per profile."""


def build_half_cheetah_vel(
    cfg: HalfCheetahVelConfig, device: torch.device
) -> HalfCheetahVelDistribution:
    return HalfCheetahVelDistribution(cfg.low, cfg.high, device)


def build_half_cheetah_dir(
    cfg: HalfCheetahDirConfig, device: torch.device
) -> HalfCheetahDirDistribution:
    return HalfCheetahDirDistribution(device)


def build_ant_dir(cfg: AntDirConfig, device: torch.device) -> AntDirDistribution:
    return AntDirDistribution(cfg.forward_backward, device)


def build_ant_goal(cfg: AntGoalConfig, device: torch.device) -> AntGoalDistribution:
    return AntGoalDistribution(cfg.radius, device)


def build_slope(cfg: SlopeConfig, device: torch.device) -> SlopeDistribution:
    return SlopeDistribution(
        cfg.robot,
        cfg.train_max_deg,
        cfg.val_band_deg,
        cfg.test_band_deg,
        cfg.beyond_band_deg,
        device,
    )


def build_terrain(cfg: TerrainConfig, device: torch.device) -> TerrainDistribution:
    return TerrainDistribution(cfg.num_hills, device)
