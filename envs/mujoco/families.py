"""The MuJoCo task families as `metarl.contracts.MetaRLDistribution`s.

A family is three things on the one base `MujocoFamily`: its config (a frozen dataclass,
validated once in `__post_init__`; `metarl.registry` builds it from the `task:` section of a
run config), its task sampling (`draw`) and its Gymnasium env id. The base does the rest:
split and count checks, `horizon` (200, the MAML / ProMP / PEARL default), the cached
`observation_space` / `action_space`, `renderable = True` (`BatchedMujocoEnv.render_copy`)
and `make_env`. From Python, a family is built from its config:

    dist = SlopeDistribution(SlopeConfig(robot="ant"))     # or SlopeDistribution() for defaults
    tasks = dist.sample("train", 4, torch.Generator().manual_seed(0))
    env = dist.make_env(4, envs_per_task=2)                 # BatchedMujocoEnv, 8 copies
    obs, _ = env.reset(seed=0, options={"tasks": tasks})

`SlopeDistribution(cfg, device)` is also the registry's builder (`build(cfg, device)`):
sampled tasks are moved to `device`; the envs step on the CPU whatever `device` is.

Splits. For the benchmark families (velocity, direction, goal) the papers draw train and test
tasks from one distribution, so all splits share the range and differ only by the draws
(HalfCheetahDir has just two tasks). Slope and terrain hold out parameter bands, inside the
training range (`val`, `test`) and beyond it (`test_beyond`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar, cast

import gymnasium
import torch

from envs.mujoco.batched import BatchedMujocoEnv
from envs.mujoco.locomotion import ENV_CLASSES
from envs.mujoco.registration import HORIZON
from envs.mujoco.tasks import (
    MAX_GOAL_RADIUS,
    MAX_SLOPE_DEG,
    MAX_VELOCITY,
    NUM_HILLS,
    DirectionTask,
    GoalTask,
    HeadingTask,
    SlopeTask,
    TerrainPaceTask,
    TerrainPhysicsTask,
    TerrainTask,
    VelocityTask,
)
from metarl.contracts import SPLITS, check_split
from metarl.errors import UsageError
from metarl.tasks import TaskBatch

SLOPE_SPLITS = (*SPLITS, "test_beyond")

ConfigT = TypeVar("ConfigT")
TaskT = TypeVar("TaskT", bound=TaskBatch)


@functools.cache
def _spaces(env_id: str) -> tuple[gymnasium.Space, gymnasium.Space]:
    """(observation, action) space of one copy of `env_id` (built once per process)."""
    env = ENV_CLASSES[env_id]()
    spaces = (env.observation_space, env.action_space)
    env.close()
    return spaces


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be a positive integer; got {value!r}")
    return value


class MujocoFamily(Generic[ConfigT, TaskT]):
    """Base of the MuJoCo families: `config` (frozen) + `draw` + `env_id` (module docstring)."""

    config_cls: ClassVar[type]
    splits: ClassVar[tuple[str, ...]] = SPLITS
    renderable: ClassVar[bool] = True  # BatchedMujocoEnv.render_copy: videos of adapted behaviour
    horizon: int = HORIZON
    env_id: str
    """The Gymnasium id of the family's env (`metarl/...-v0`, see `registration`)."""

    def __init__(self, config: ConfigT | None = None, device: torch.device | str = "cpu"):
        if config is None:
            config = cast(ConfigT, self.config_cls())
        if not isinstance(config, self.config_cls):
            raise UsageError(
                f"{type(self).__name__} takes a {self.config_cls.__name__}; "
                f"got {type(config).__name__}"
            )
        self.config: ConfigT = config
        self.device = torch.device(device)
        self.env_id = self.env_id_of(config)
        self.observation_space, self.action_space = _spaces(self.env_id)

    @classmethod
    def env_id_of(cls, config: ConfigT) -> str:
        """The env id for `config` (the family's one id unless the config picks a robot)."""
        return cls.env_id

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> TaskT:
        """`num_tasks` tasks of a valid `split` on the generator's device (the family's part)."""
        raise NotImplementedError

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> TaskT:
        """`num_tasks` tasks of `split`, drawn with `generator` only, on `self.device`."""
        check_split(split, self.splits)
        _positive_int("num_tasks", num_tasks)
        return self.draw(split, num_tasks, generator).to(self.device)

    def make_env(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: torch.device | str | None = None,
        horizon: int | None = None,
    ) -> BatchedMujocoEnv:
        """`BatchedMujocoEnv` of `num_tasks * envs_per_task` copies (task-major), episodes of
        `horizon or self.horizon` steps; tasks are set by `reset(options={"tasks": ...})`.
        MuJoCo steps on the CPU: `device` is accepted for the contract and not used."""
        _positive_int("num_tasks", num_tasks)
        _positive_int("envs_per_task", envs_per_task)
        steps = self.horizon if horizon is None else _positive_int("horizon", horizon)
        return BatchedMujocoEnv(
            self.env_id, num_tasks * envs_per_task, steps, envs_per_task=envs_per_task
        )


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


def _signs(n: int, g: torch.Generator) -> torch.Tensor:
    """Fair coin flips `[n]` int64 in {0, 1}."""
    return torch.randint(0, 2, (n,), generator=g, device=g.device)


# --- the families ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HalfCheetahVelConfig:
    low: float = 0.0
    """Lowest target velocity (m/s)."""
    high: float = 2.0
    """Highest target velocity (m/s)."""

    def __post_init__(self) -> None:
        if not -MAX_VELOCITY <= self.low <= self.high <= MAX_VELOCITY:
            raise UsageError(
                f"velocity range must satisfy -5 <= low <= high <= 5; got [{self.low}, {self.high}]"
            )


class HalfCheetahVelDistribution(MujocoFamily[HalfCheetahVelConfig, VelocityTask]):
    """Target velocity U[low, high] m/s (MAML / ProMP: U[0, 2]); all splits share the range."""

    config_cls = HalfCheetahVelConfig
    env_id = "metarl/HalfCheetahVel-v0"

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> VelocityTask:
        return VelocityTask(_uniform(num_tasks, self.config.low, self.config.high, generator))


@dataclass(frozen=True)
class HalfCheetahDirConfig:
    pass


class HalfCheetahDirDistribution(MujocoFamily[HalfCheetahDirConfig, DirectionTask]):
    """Direction +1 or -1 with probability 1/2 (MAML / ProMP forward-backward cheetah)."""

    config_cls = HalfCheetahDirConfig
    env_id = "metarl/HalfCheetahDir-v0"

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> DirectionTask:
        return DirectionTask((2.0 * _signs(num_tasks, generator) - 1.0).double())


@dataclass(frozen=True)
class AntDirConfig:
    forward_backward: bool = False
    """Sample only forward (0) or backward (pi) headings, as MAML's ant task; else U[0, 2 pi)."""


class AntDirDistribution(MujocoFamily[AntDirConfig, HeadingTask]):
    """Heading angle U[0, 2 pi) (2-D directions), or {0, pi} when `forward_backward` (MAML)."""

    config_cls = AntDirConfig
    env_id = "metarl/AntDir-v0"

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> HeadingTask:
        if self.config.forward_backward:
            return HeadingTask(_signs(num_tasks, generator).double() * math.pi)
        return HeadingTask(_uniform(num_tasks, 0.0, 2 * math.pi, generator))


@dataclass(frozen=True)
class AntGoalConfig:
    radius: float = 3.0
    """Radius (m) of the disc of goals."""

    def __post_init__(self) -> None:
        if not 0.0 < self.radius <= MAX_GOAL_RADIUS:
            raise UsageError(f"radius must be in (0, 10]; got {self.radius}")


class AntGoalDistribution(MujocoFamily[AntGoalConfig, GoalTask]):
    """Goal uniform in a disc of radius `radius` (PEARL: 3): r = R sqrt(u), angle U[0, 2 pi)."""

    config_cls = AntGoalConfig
    env_id = "metarl/AntGoal-v0"

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> GoalTask:
        r = self.config.radius * _uniform(num_tasks, 0.0, 1.0, generator).sqrt()
        a = _uniform(num_tasks, 0.0, 2 * math.pi, generator)
        return GoalTask(torch.stack([r * a.cos(), r * a.sin()], dim=1))


@dataclass(frozen=True)
class SlopeConfig:
    robot: Literal["half_cheetah", "ant"] = "half_cheetah"
    """Which robot walks the slope."""
    goal: Literal["forward", "uphill"] = "forward"
    """Reward: `forward` progress along +x (uphill for angle > 0, downhill for < 0), or
    `uphill` progress up the slope whichever way it rises (`HalfCheetahUphill` / `AntUphill`:
    the agent must find out which way is up)."""
    train_max_deg: float = 10.0
    """Training angles lie in [-train_max_deg, train_max_deg] minus the held-out bands."""
    val_band_deg: tuple[float, float] = (2.5, 3.5)
    """|angle| band of the `val` split (held out from training)."""
    test_band_deg: tuple[float, float] = (6.5, 7.5)
    """|angle| band of the `test` split (held out from training)."""
    beyond_band_deg: tuple[float, float] = (12.0, 20.0)
    """|angle| band of `test_beyond`, outside the training range (must stay below 30)."""

    def __post_init__(self) -> None:
        if self.robot not in ("half_cheetah", "ant"):
            raise UsageError(f"robot must be 'half_cheetah' or 'ant'; got {self.robot!r}")
        if self.goal not in ("forward", "uphill"):
            raise UsageError(f"goal must be 'forward' or 'uphill'; got {self.goal!r}")
        v, t, b = tuple(self.val_band_deg), tuple(self.test_band_deg), tuple(self.beyond_band_deg)
        top = self.train_max_deg
        ok = (
            len(v) == len(t) == len(b) == 2
            and 0 <= v[0] < v[1] <= top
            and 0 <= t[0] < t[1] <= top
            and (v[1] <= t[0] or t[1] <= v[0])
            and top <= b[0] < b[1] < MAX_SLOPE_DEG
        )
        if not ok:
            raise UsageError(
                "slope bands must satisfy 0 <= val, test bands <= train_max_deg (disjoint) "
                f"<= beyond band < 30 degrees; got val={v}, test={t}, train_max={top}, beyond={b}"
            )


class SlopeDistribution(MujocoFamily[SlopeConfig, SlopeTask]):
    """Slope angle in degrees, with held-out bands inside and beyond the training range.

    `goal: uphill` (`HalfCheetahUphill` / `AntUphill`) rewards climbing whichever way the
    floor rises, so the sign of the angle decides which way to run; `forward` rewards +x.
    With the defaults (both signs, i.e. uphill and downhill):
    - `train`: U over [-10, 10] minus the `val` and `test` bands;
    - `val`: |angle| in [2.5, 3.5]; `test`: |angle| in [6.5, 7.5] (unseen, inside the range);
    - `test_beyond`: |angle| in [12, 20] (unseen, outside the training range).
    """

    config_cls = SlopeConfig
    splits = SLOPE_SPLITS

    def __init__(self, config: SlopeConfig | None = None, device: torch.device | str = "cpu"):
        super().__init__(config, device)
        cfg = self.config
        holes = sorted([tuple(cfg.val_band_deg), tuple(cfg.test_band_deg)])
        edges = [-cfg.train_max_deg] + [e for h in reversed(holes) for e in (-h[1], -h[0])]
        edges += [e for h in holes for e in h] + [cfg.train_max_deg]
        train = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
        self.intervals: dict[str, list[tuple[float, float]]] = {
            "train": [iv for iv in train if iv[1] > iv[0]],
            "val": _symmetric(cfg.val_band_deg),
            "test": _symmetric(cfg.test_band_deg),
            "test_beyond": _symmetric(cfg.beyond_band_deg),
        }

    @classmethod
    def env_id_of(cls, config: SlopeConfig) -> str:
        robot = "HalfCheetah" if config.robot == "half_cheetah" else "Ant"
        return f"metarl/{robot}{'Uphill' if config.goal == 'uphill' else 'Slope'}-v0"

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> SlopeTask:
        return SlopeTask(_union(num_tasks, self.intervals[split], generator))


@dataclass(frozen=True)
class TerrainConfig:
    num_hills: int = NUM_HILLS
    """Raised-cosine hills or dips per profile."""
    physics: bool = False
    """Also vary the robot per task (`HalfCheetahTerrainPhysics`, `TerrainPhysicsTask`):
    ground friction, torso payload and the strength of each motor, as RMA does."""
    goal: Literal["forward", "pace"] = "forward"
    """Reward: `forward` speed (run as fast as the robot can), or `pace`: hold a target pace
    drawn per task and known only through the reward (`HalfCheetahTerrainPace`,
    `TerrainPaceTask`; its robots are those of `physics`, or all the default one)."""

    def __post_init__(self) -> None:
        if not isinstance(self.num_hills, int) or not 0 <= self.num_hills <= 10:
            raise UsageError(f"num_hills must be an integer in [0, 10]; got {self.num_hills!r}")
        if not isinstance(self.physics, bool):
            raise UsageError(f"physics must be true or false; got {self.physics!r}")
        if self.goal not in ("forward", "pace"):
            raise UsageError(f"goal must be 'forward' or 'pace'; got {self.goal!r}")


class TerrainDistribution(MujocoFamily[TerrainConfig, TerrainTask]):
    """Ramp-and-hills profiles for HalfCheetahTerrain (see `TerrainTask` for h(x)).

    `train`/`val`/`test` share the ranges (independent draws): ramp_start U[2, 10] m,
    ramp_length U[2, 8] m, ramp_grade U[-0.1, 0.1], `num_hills` hills with centre U[4, 30] m,
    height U[-0.2, 0.2] m, half-width U[0.5, 2] m. `test_beyond` is harsher than anything
    trained on: |ramp_grade| in [0.12, 0.2] and |hill_height| in [0.2, 0.3] (either sign).
    The first 2 m are always flat, so the robot starts on level ground.

    With `physics: true` each task also draws the robot (`TerrainPhysicsTask`, after the
    profile from the same generator, so the profiles are those of `physics: false`): friction
    scale U[0.1, 1] (an icy 0.04 to Gymnasium's 0.4), payload U[0, 10] kg on the torso, each
    motor's strength U[0.2, 1]. `test_beyond` is beyond all three: friction U[0.05, 0.1],
    payload U[10, 15] kg, and one motor (of the six, uniformly) at U[0, 0.2], the others as
    in training.

    With `goal: pace` the task also draws a target pace U[0, 2] m/s (MAML's HalfCheetahVel
    range), U[2, 2.5] in `test_beyond`, after the robot (drawn as above with `physics: true`;
    with `physics: false` every robot is the default one: friction 1, no payload, strengths 1).
    """

    config_cls = TerrainConfig
    env_id = "metarl/HalfCheetahTerrain-v0"
    splits = SLOPE_SPLITS

    @classmethod
    def env_id_of(cls, config: TerrainConfig) -> str:
        if config.goal == "pace":
            return "metarl/HalfCheetahTerrainPace-v0"
        return "metarl/HalfCheetahTerrainPhysics-v0" if config.physics else cls.env_id

    def draw(self, split: str, num_tasks: int, generator: torch.Generator) -> TerrainTask:
        n, k, g = num_tasks, self.config.num_hills, generator
        start, length = _uniform(n, 2.0, 10.0, g), _uniform(n, 2.0, 8.0, g)
        centers = _uniform(n * k, 4.0, 30.0, g).reshape(n, k)
        widths = _uniform(n * k, 0.5, 2.0, g).reshape(n, k)
        if split == "test_beyond":
            grade = _union(n, _symmetric((0.12, 0.2)), g)
            heights = _union(n * k, _symmetric((0.2, 0.3)), g).reshape(n, k)
        else:
            grade = _uniform(n, -0.1, 0.1, g)
            heights = _uniform(n * k, -0.2, 0.2, g).reshape(n, k)
        profile = (start, length, grade, centers, heights, widths)
        cfg = self.config
        if not cfg.physics and cfg.goal == "forward":
            return TerrainTask(*profile)
        if cfg.physics:
            strength = _uniform(n * 6, 0.2, 1.0, g).reshape(n, 6)
            if split == "test_beyond":
                friction, payload = _uniform(n, 0.05, 0.1, g), _uniform(n, 10.0, 15.0, g)
                weak = torch.randint(0, 6, (n,), generator=g, device=g.device)
                strength[torch.arange(n), weak] = _uniform(n, 0.0, 0.2, g)
            else:
                friction, payload = _uniform(n, 0.1, 1.0, g), _uniform(n, 0.0, 10.0, g)
        else:
            ones = torch.ones(n, dtype=torch.float64, device=g.device)
            friction, payload, strength = ones, 0 * ones, ones[:, None].repeat(1, 6)
        if cfg.goal == "forward":
            return TerrainPhysicsTask(*profile, friction, payload, strength)
        pace = _uniform(n, 2.0, 2.5, g) if split == "test_beyond" else _uniform(n, 0.0, 2.0, g)
        return TerrainPaceTask(*profile, friction, payload, strength, pace)
