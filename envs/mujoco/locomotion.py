"""MuJoCo locomotion task families on Gymnasium's v5 HalfCheetah and Ant.

Every env is a Gymnasium `HalfCheetahEnv` / `AntEnv` whose task is data applied at reset,
without recompiling the model:

    env.reset(seed=0, options={"tasks": VelocityTask(torch.tensor([1.5]))})  # or {"velocity": 1.5}

Episode and trial boundaries. A reset *with* a task, `options={"tasks": tasks}` (a batch of
one task, or a mapping of its fields; `"tasks"` is the one reset key of every env here),
starts a new trial (a new task); a reset without one starts a new episode of the same task
(RL² keeps its memory across those). The task persists until replaced; it starts as the
`task` constructor argument (default below).
Horizon: 200 steps (`max_episode_steps` of the registered ids, as MAML / ProMP / PEARL).
HalfCheetah never terminates; Ant terminates when unhealthy (torso height outside
[0.2, 1.0] m or a non-finite state), as Gymnasium's Ant-v5. Gymnasium's `TimeLimit`
truncates at the horizon; there is no autoreset in the single env (`BatchedMujocoEnv` resets
finished copies in the same step).

Observations are those of the v5 envs (float64): HalfCheetah `[17]` = qpos[1:] (8) + qvel (9);
Ant `[105]` = qpos[2:] (13) + qvel (14) + clip(cfrc_ext[1:], -1, 1) (78). They never contain
the task: the agent must infer it from rewards and dynamics.
Actions: Box(-1, 1) of `[6]` (HalfCheetah) / `[8]` (Ant), float32. NaN/inf or a wrong shape
raises `UsageError`; finite actions outside the box are *clipped* and the control cost is
charged on the clipped action.

Rewards (v = (x_after - x_before) / dt with dt = 0.05 s; for Ant the torso's x-y velocity;
ctrl = sum(a^2); contact = sum(clip(cfrc_ext[1:], -1, 1)^2); healthy = 1 while healthy):
| env | reward | source of the coefficients |
| --- | --- | --- |
| HalfCheetahVel | -abs(v_x - v_target) - 0.05 ctrl | MAML (Finn et al. 2017), ProMP |
| HalfCheetahDir | direction * v_x - 0.05 ctrl | MAML, ProMP |
| AntDir | v_xy . (cos a, sin a) + healthy - 0.5 ctrl - 5e-4 contact | Gymnasium Ant-v5 terms |
| AntGoal | -abs(xy - goal)_1 + healthy - 0.5 ctrl - 5e-4 contact | PEARL's L1 goal term |
| HalfCheetahSlope | v_x (along the slope) - 0.1 ctrl | HalfCheetah-v5 terms |
| HalfCheetahUphill | sign(alpha) v_x (progress *up* the slope) - 0.1 ctrl | HalfCheetah-v5 terms |
| AntSlope | v_x (along the slope) + healthy - 0.5 ctrl - 5e-4 contact | Ant-v5 terms |
| AntUphill | sign(alpha) v_x + healthy - 0.5 ctrl - 5e-4 contact | Ant-v5 terms |
| HalfCheetahTerrain | v_x - 0.1 ctrl | HalfCheetah-v5 terms |
| HalfCheetahTerrainPhysics | v_x - 0.1 ctrl | HalfCheetah-v5 terms |
| HalfCheetahTerrainPace | -abs(v_x - v_target) - 0.05 ctrl | MAML's HalfCheetahVel |

Slope. A uniform slope of angle `alpha` (the floor rises along +x for alpha > 0) is simulated
in the slope frame: the floor stays the plane z = 0 and gravity is rotated about the y axis,
g = 9.81 (-sin alpha, 0, -cos alpha). Everything -- observations, x-progress in the reward, the
Ant health height, the rendered image -- is therefore in the slope frame: x is distance along
the slope, z height above it. Setting `model.opt.gravity` needs no recompilation and no
`mj_setConst`, and (unlike tilting the floor geom) cannot make a foot penetrate the floor.

Terrain. Gymnasium's half_cheetah.xml is compiled once per env with its floor plane replaced by
a height field covering x in [-20, 100] m (0.2 m cells, 2 rows across y in [-1, 1] m,
heights in [-1, 1] m); `model.hfield_data` (and the elevation scale `hfield_size[0, 2]`, lowered
to the task's highest point to speed up collisions) is rewritten at each task reset from the profile of
`TerrainTask`, and re-uploaded to the GPU when a renderer is open. The cheetah starts lifted
by h(0) so that it stands on the terrain. HalfCheetahTerrainPhysics also writes the task's
friction (`geom_friction`), payload (`body_mass` / `body_inertia` of the torso) and motor
strengths (`actuator_gear`) into the model, from the compiled defaults, at each task reset.

Kernels. Rewards, observations and resets are written once as functions of batched arrays
(`[B, ...]`) used by `BatchedMujocoEnv` for all copies at once (and by the single Ant with
B = 1); the single HalfCheetah envs step through a scalar twin (`step` / `forward1`: the same
IEEE operations in the same order on Python floats, without Gymnasium's per-step checks), so
single and batched envs give the same numbers (tested) and the single env costs no more than
HalfCheetah-v5.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco.ant_v5 import AntEnv  # noqa: E402
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv  # noqa: E402
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv  # noqa: E402
from gymnasium.spaces import Box  # noqa: E402
from gymnasium.utils import EzPickle  # noqa: E402

from envs.checks import check_seed
from envs.mujoco._common import check_actions, task_option  # (envs/mujoco/__init__ set MUJOCO_GL)
from envs.mujoco.tasks import (  # noqa: E402
    PHYSICS_DIM,
    DirectionTask,
    GoalTask,
    HeadingTask,
    MujocoTask,
    SlopeTask,
    TerrainPaceTask,
    TerrainPhysicsTask,
    TerrainTask,
    VelocityTask,
)
from metarl.errors import UsageError  # noqa: E402

GRAVITY = 9.81
RESET_NOISE = 0.1

# Terrain height field: x in [X_MIN, X_MAX] m, heights in [-DEPTH, HEIGHT] m.
TERRAIN_X_MIN, TERRAIN_X_MAX, TERRAIN_NCOL, TERRAIN_NROW = -20.0, 100.0, 601, 2
TERRAIN_DEPTH, TERRAIN_HEIGHT = 1.0, 1.0
TERRAIN_X = np.linspace(TERRAIN_X_MIN, TERRAIN_X_MAX, TERRAIN_NCOL)


class Snapshot(NamedTuple):
    """Batched state read after a step: `pos [B, 1 or 2]` (cheetah x / Ant torso x-y),
    `qpos [B, nq]`, `qvel [B, nv]`, `cfrc [B, nbody - 1, 6]` (Ant only, else None)."""

    pos: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray
    cfrc: np.ndarray | None


def reset_state(
    rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray, z_offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """The v5 reset noise (qpos += U[-0.1, 0.1], qvel += 0.1 N(0, 1)), in that draw order."""
    qpos = qpos0 + rng.uniform(low=-RESET_NOISE, high=RESET_NOISE, size=qpos0.shape[0])
    qvel = qvel0 + RESET_NOISE * rng.standard_normal(qvel0.shape[0])
    if z_offset != 0.0:
        qpos[1] += z_offset  # HalfCheetah rootz: stand on the terrain
    return qpos, qvel


class _TaskEnv(MujocoEnv, EzPickle):
    """What every family adds to its Gymnasium base: task handling and the batched kernels."""

    task_cls: ClassVar[type[MujocoTask]]
    default_task: ClassVar[dict[str, Any]]
    robot: ClassVar[str]

    def __init__(self, task: Any = None, **kwargs: Any):
        """`task`: the initial task (a batch of one, or a mapping of its fields); `kwargs` go
        to the Gymnasium base env (`render_mode`, `width`, ...)."""
        self._init_base(**kwargs)
        EzPickle.__init__(self, task=task, **kwargs)
        self._setup_task(task)

    def _init_base(self, **kwargs: Any) -> None:
        """Initialise the Gymnasium base env (HalfCheetah-v5 / Ant-v5 with our weights)."""
        raise NotImplementedError

    def _setup_task(self, task: Any) -> None:
        space = self.action_space
        assert isinstance(space, Box)
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self._ashape = (self.model.nu,)
        self._dt = self.dt  # = timestep * frame_skip, as BatchedMujocoEnv's
        self._set_task(self.task_cls.coerce(self.default_task if task is None else task))

    def _set_task(self, task: MujocoTask) -> None:
        if task.num_tasks != 1:
            raise UsageError(
                f"a single env takes one task; got {task.num_tasks} (pick one: tasks.select(i))"
            )
        self._task = task
        self._params = task.features(torch.float64).cpu().numpy()  # [1, P]
        self._p = tuple(float(x) for x in self._params[0])  # the same, as Python floats
        self.apply_task(self.model, self._params[0])
        self._z0 = self.z_offset(self._params[0])
        self._after_task()

    def _after_task(self) -> None:
        pass

    @property
    def task(self) -> Any:
        """The current task (`num_tasks == 1`)."""
        return self._task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        seed = check_seed(seed)
        task = task_option(options, self.task_cls)
        if task is not None:
            self._set_task(task)
        return super().reset(seed=seed)

    def reset_model(self) -> np.ndarray:
        qpos, qvel = reset_state(self.np_random, self.init_qpos, self.init_qvel, self._z0)
        self.set_state(qpos, qvel)
        return self._obs_now()

    def _obs_now(self) -> np.ndarray:
        """The observation `[obs_dim]` of the current state."""
        raise NotImplementedError

    # --- kernels shared with BatchedMujocoEnv (all arrays batched `[B, ...]`) ---------------
    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        """Write one task's parameters `[P]` into `model` (gravity, height field); default none."""

    @staticmethod
    def z_offset(params: np.ndarray) -> float:
        return 0.0

    @staticmethod
    def observe(qpos: np.ndarray, qvel: np.ndarray, cfrc: np.ndarray | None) -> np.ndarray:
        """Observations `[B, obs_dim]` of batched states (robot-specific)."""
        raise NotImplementedError

    @classmethod
    def reward(
        cls, pos0: np.ndarray, snap: Snapshot, action: np.ndarray, params: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Reward `[B]`, terminated `[B]` and reward terms `[B]` each (robot-specific)."""
        raise NotImplementedError


class _Cheetah(_TaskEnv, HalfCheetahEnv):
    robot = "half_cheetah"
    ctrl_weight: ClassVar[float] = 0.1

    def _init_base(self, **kwargs: Any) -> None:
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=self.ctrl_weight, **kwargs)

    def _obs_now(self) -> np.ndarray:
        return self.observe(self.data.qpos[None], self.data.qvel[None], None)[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]  # Gymnasium annotates float64 rewards
        # The scalar twin of the batched kernels `reward` / `observe` below (same IEEE
        # operations in the same order, so the same numbers; tested against BatchedMujocoEnv),
        # without Gymnasium's `do_simulation` checks. `mj_rnePostConstraint` is skipped: no
        # cheetah reward or observation reads `cfrc_ext`/`cacc` (nor does HalfCheetah-v5's).
        a = check_actions(action, self._low, self._high, self._ashape)
        d = self.data
        x0 = float(d.qpos[0])
        d.ctrl[:] = a
        mujoco.mj_step(self.model, d, nstep=self.frame_skip)
        qpos = d.qpos
        x1 = float(qpos[0])
        v = (x1 - x0) / self._dt
        forward = self.forward1(v)
        ctrl = self.ctrl_weight * float(np.sum(np.square(a)))
        info = {"x_position": x1, "x_velocity": v, "reward_forward": forward, "reward_ctrl": -ctrl}
        if self.render_mode == "human":
            self.render()
        return np.concatenate((qpos[1:], d.qvel)), forward - ctrl, False, False, info

    def forward1(self, v: float) -> float:
        """`forward` of one copy on Python floats (the task is `self._p`)."""
        return v

    @staticmethod
    def observe(qpos: np.ndarray, qvel: np.ndarray, cfrc: np.ndarray | None) -> np.ndarray:
        """`[B, 17]` = qpos[:, 1:] + qvel."""
        return np.concatenate([qpos[:, 1:], qvel], axis=1)

    @classmethod
    def reward(
        cls, pos0: np.ndarray, snap: Snapshot, action: np.ndarray, params: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Reward `[B]`, terminated `[B]` (always False) and reward terms `[B]` each."""
        v = (snap.pos[:, 0] - pos0[:, 0]) / dt
        forward = cls.forward(v, params)
        ctrl = cls.ctrl_weight * np.sum(np.square(action), axis=1)
        terms = {"x_velocity": v, "reward_forward": forward, "reward_ctrl": -ctrl}
        return forward - ctrl, np.zeros(v.shape, dtype=bool), terms

    @staticmethod
    def forward(v: np.ndarray, params: np.ndarray) -> np.ndarray:
        return v


class _Ant(_TaskEnv, AntEnv):
    robot = "ant"
    ctrl_weight: ClassVar[float] = 0.5
    contact_weight: ClassVar[float] = 5e-4
    healthy_z: ClassVar[tuple[float, float]] = (0.2, 1.0)

    def _init_base(self, **kwargs: Any) -> None:
        AntEnv.__init__(self, **kwargs)

    def _obs_now(self) -> np.ndarray:
        return self.observe(
            self.data.qpos[None], self.data.qvel[None], self.data.cfrc_ext[None, 1:]
        )[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]  # Gymnasium annotates float64 rewards
        a = check_actions(action, self._low, self._high, self._ashape)
        d = self.data
        pos0 = d.xpos[None, 1, :2].copy()
        d.ctrl[:] = a  # Gymnasium's do_simulation without its checks
        mujoco.mj_step(self.model, d, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(self.model, d)  # cfrc_ext for the obs and contact cost
        snap = Snapshot(
            d.xpos[None, 1, :2].copy(), d.qpos[None], d.qvel[None], d.cfrc_ext[None, 1:]
        )
        reward, terminated, terms = self.reward(pos0, snap, a[None], self._params, self._dt)
        info = {
            "x_position": d.qpos[0],
            "y_position": d.qpos[1],
            **{k: v[0] for k, v in terms.items()},
        }
        if self.render_mode == "human":
            self.render()
        return self._obs_now(), float(reward[0]), bool(terminated[0]), False, info

    @staticmethod
    def observe(qpos: np.ndarray, qvel: np.ndarray, cfrc: np.ndarray | None) -> np.ndarray:
        """`[B, 105]` = qpos[:, 2:] + qvel + clip(cfrc_ext[:, 1:], -1, 1) flattened."""
        assert cfrc is not None
        contact = np.clip(cfrc, -1.0, 1.0).reshape(cfrc.shape[0], -1)
        return np.concatenate([qpos[:, 2:], qvel, contact], axis=1)

    @classmethod
    def reward(
        cls, pos0: np.ndarray, snap: Snapshot, action: np.ndarray, params: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Reward `[B]`, terminated `[B]` (unhealthy) and reward terms `[B]` each."""
        assert snap.cfrc is not None
        vxy = (snap.pos - pos0) / dt
        z = snap.qpos[:, 2]
        healthy = (
            np.isfinite(snap.qpos).all(axis=1)
            & np.isfinite(snap.qvel).all(axis=1)
            & (z >= cls.healthy_z[0])
            & (z <= cls.healthy_z[1])
        )
        forward = cls.forward(vxy, snap.pos, params)
        ctrl = cls.ctrl_weight * np.sum(np.square(action), axis=1)
        flat = np.clip(snap.cfrc, -1.0, 1.0).reshape(snap.cfrc.shape[0], -1)
        contact = cls.contact_weight * np.sum(np.square(flat), axis=1)
        survive = healthy.astype(np.float64)
        terms = {
            "x_velocity": vxy[:, 0],
            "y_velocity": vxy[:, 1],
            "reward_forward": forward,
            "reward_ctrl": -ctrl,
            "reward_contact": -contact,
            "reward_survive": survive,
        }
        return forward + survive - ctrl - contact, ~healthy, terms

    @staticmethod
    def forward(vxy: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return vxy[:, 0]


def _slope_gravity(model: mujoco.MjModel, params: np.ndarray) -> None:
    alpha = math.radians(float(params[0]))
    model.opt.gravity[:] = (-GRAVITY * math.sin(alpha), 0.0, -GRAVITY * math.cos(alpha))


def _uphill(v: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Progress up the slope `[B]`: +v on a floor rising along +x (angle >= 0), -v otherwise."""
    return np.where(angle_deg < 0, -v, v)


# --- the families -------------------------------------------------------------------------------


class HalfCheetahVelEnv(_Cheetah):
    """HalfCheetah that must run at a target velocity (task: `VelocityTask`, default 1 m/s).

    Reward -|v_x - v_target| - 0.05 |a|^2 (MAML, Finn et al. 2017; ProMP, Rothfuss et al.
    2019; targets U[0, 2] m/s in `HalfCheetahVelDistribution`). Horizon 200. Obs `[17]`,
    action `[6]`; see the module docstring for the reset and action contract.
    """

    task_cls = VelocityTask
    default_task = {"velocity": 1.0}
    ctrl_weight = 0.05

    @staticmethod
    def forward(v: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.abs(v - params[:, 0])

    def forward1(self, v: float) -> float:
        return -abs(v - self._p[0])


class HalfCheetahDirEnv(_Cheetah):
    """HalfCheetah that must run forward (+1) or backward (-1) (task: `DirectionTask`).

    Reward direction * v_x - 0.05 |a|^2 (MAML; ProMP). Horizon 200. Default direction +1.
    """

    task_cls = DirectionTask
    default_task = {"direction": 1.0}
    ctrl_weight = 0.05

    @staticmethod
    def forward(v: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[:, 0] * v

    def forward1(self, v: float) -> float:
        return self._p[0] * v


class HalfCheetahSlopeEnv(_Cheetah):
    """HalfCheetah on a uniform slope of `angle_deg` (task: `SlopeTask`; |angle| < 30; default 0).

    Gravity is rotated into the slope frame (module docstring); the floor rises along +x
    for angle > 0, so a passive cheetah slides towards -x. Reward: progress along the slope
    v_x - 0.1 |a|^2 (HalfCheetah-v5 weights). Horizon 200. Obs `[17]` in the slope frame.
    """

    task_cls = SlopeTask
    default_task = {"angle_deg": 0.0}

    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        _slope_gravity(model, params)


class HalfCheetahUphillEnv(HalfCheetahSlopeEnv):
    """HalfCheetah that must climb a slope whose direction of rise it is not told.

    The slope of `HalfCheetahSlopeEnv` (gravity rotated; task `SlopeTask`), but the reward is
    progress *up* the slope, sign(angle) v_x - 0.1 |a|^2 (sign(0) = +1): on a floor rising
    along -x the cheetah must run backwards. A feed-forward policy that does not know the
    angle cannot tell which way is up from one observation (the observation is in the slope
    frame); the pull of gravity and the sign of the reward reveal it within a few steps.
    """

    @staticmethod
    def forward(v: np.ndarray, params: np.ndarray) -> np.ndarray:
        return _uphill(v, params[:, 0])

    def forward1(self, v: float) -> float:
        return -v if self._p[0] < 0 else v


class AntDirEnv(_Ant):
    """Ant rewarded for velocity along a heading angle (task: `HeadingTask`, default 0 = +x).

    2-D directions U[0, 2 pi) by default; `AntDirConfig(forward_backward=True)` gives MAML's /
    ProMP's forward-or-backward ant. Reward v_xy . (cos a, sin a) + healthy
    - 0.5 |a|^2 - 5e-4 contact (Ant-v5 weights). Horizon 200; terminates when unhealthy.
    """

    task_cls = HeadingTask
    default_task = {"angle": 0.0}

    @staticmethod
    def forward(vxy: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return vxy[:, 0] * np.cos(params[:, 0]) + vxy[:, 1] * np.sin(params[:, 0])


class AntGoalEnv(_Ant):
    """Ant that must reach an x-y goal (task: `GoalTask`, default (3, 0); |goal| <= 10).

    Goals uniform in a disc of radius 3 (PEARL, Rakelly et al. 2019). Reward -|xy - goal|_1
    + healthy - 0.5 |a|^2 - 5e-4 contact (PEARL's L1 goal term, Ant-v5 cost weights), with xy
    the torso position. Horizon 200; terminates when unhealthy.
    """

    task_cls = GoalTask
    default_task = {"goal": [3.0, 0.0]}

    @staticmethod
    def forward(vxy: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.sum(np.abs(xy - params[:, :2]), axis=1)


class AntSlopeEnv(_Ant):
    """Ant on a uniform slope rising along +x (task: `SlopeTask`; |angle| < 30; default 0).

    Gravity rotated into the slope frame. Reward: progress along the slope v_x + healthy
    - 0.5 |a|^2 - 5e-4 contact (Ant-v5 weights). Horizon 200; terminates when unhealthy
    (torso height above the slope outside [0.2, 1.0] m).
    """

    task_cls = SlopeTask
    default_task = {"angle_deg": 0.0}

    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        _slope_gravity(model, params)


class AntUphillEnv(AntSlopeEnv):
    """Ant that must climb a slope whose direction of rise it is not told (`AntSlopeEnv` with
    reward sign(angle) v_x + healthy - 0.5 |a|^2 - 5e-4 contact; see `HalfCheetahUphillEnv`)."""

    @staticmethod
    def forward(vxy: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return _uphill(vxy[:, 0], params[:, 0])


@functools.lru_cache(maxsize=1)
def terrain_xml() -> str:
    """Gymnasium's half_cheetah.xml with the floor plane replaced by a height field."""
    import gymnasium.envs.mujoco as gm

    xml = (Path(gm.__file__).parent / "assets" / "half_cheetah.xml").read_text()
    half = (TERRAIN_X_MAX - TERRAIN_X_MIN) / 2
    center = (TERRAIN_X_MAX + TERRAIN_X_MIN) / 2
    size = f"{half:g} 1 {TERRAIN_DEPTH + TERRAIN_HEIGHT:g} 0.5"
    asset = f'<hfield name="terrain" nrow="{TERRAIN_NROW}" ncol="{TERRAIN_NCOL}" size="{size}"/>'
    floor = (
        f'<geom conaffinity="1" condim="3" material="MatPlane" name="floor" hfield="terrain" '
        f'pos="{center:g} 0 {-TERRAIN_DEPTH:g}" rgba="0.8 0.9 0.8 1" type="hfield"/>'
    )
    xml, n_floor = re.subn(r'<geom [^>]*name="floor"[^>]*/>', floor, xml)
    xml, n_asset = re.subn(r"</asset>", asset + "</asset>", xml)
    if n_floor != 1 or n_asset != 1:
        raise RuntimeError("half_cheetah.xml changed: could not find its floor geom and assets")
    return xml


class HalfCheetahTerrainEnv(_Cheetah):
    """HalfCheetah on a height field of ramps and hills (task: `TerrainTask`; default flat).

    The floor is a height field (module docstring) rewritten per task. Reward v_x - 0.1 |a|^2
    (HalfCheetah-v5 weights). Horizon 200. Obs `[17]`; rootz (obs[0]) is the absolute height.
    """

    task_cls: ClassVar[type[MujocoTask]] = TerrainTask
    default_task = {
        "ramp_start": 0.0,
        "ramp_length": 0.0,
        "ramp_grade": 0.0,
        "hill_center": [0.0],
        "hill_height": [0.0],
        "hill_width": [1.0],
    }

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = mujoco.MjModel.from_xml_string(terrain_xml())
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        h = TerrainTask.heights(params, TERRAIN_X)
        # The elevation scale is the task's own top (<= the compiled 2 m, so the compiled
        # bounding box stays conservative): MuJoCo's height-field collider rejects a geom early
        # when its bounding sphere is above the field's top, which on low terrain skips the
        # cheetah's torso, head and thighs every substep.
        scale = max(TERRAIN_DEPTH + float(h.max()), 0.05)
        model.hfield_size[0, 2] = scale
        model.hfield_data[:] = np.tile((h + TERRAIN_DEPTH) / scale, TERRAIN_NROW)  # in [0, 1]

    @staticmethod
    def z_offset(params: np.ndarray) -> float:
        return float(TerrainTask.heights(params, np.zeros(1))[0])

    def _after_task(self) -> None:
        # Re-upload the height field to every open GL context, so renders show the new terrain.
        for viewer in getattr(self.mujoco_renderer, "_viewers", {}).values():
            viewer.make_context_current()
            mujoco.mjr_uploadHField(self.model, viewer.con, 0)


@functools.cache
def _physics_defaults() -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The compiled terrain model's geom friction `[ngeom]`, torso mass, torso inertia `[3]`
    and actuator gears `[6]`, which `TerrainPhysicsTask` scales."""
    m = mujoco.MjModel.from_xml_string(terrain_xml())
    return (
        m.geom_friction[:, 0].copy(),
        float(m.body_mass[1]),
        m.body_inertia[1].copy(),
        m.actuator_gear[:, 0].copy(),
    )


class HalfCheetahTerrainPhysicsEnv(HalfCheetahTerrainEnv):
    """HalfCheetah on a terrain profile with per-task physics (task: `TerrainPhysicsTask`).

    The height field of `HalfCheetahTerrainEnv`, and the robot's ground friction, torso
    payload and per-actuator motor strength set per task (as RMA, Kumar et al. 2021, varies
    them): a gait tuned for one cheetah slips, stalls or tips on another, and the history of
    states and actions reveals which one it is. Reward v_x - 0.1 |a|^2. Default: flat, the
    Gymnasium cheetah (friction 1, no payload, strengths 1).
    """

    task_cls: ClassVar[type[MujocoTask]] = TerrainPhysicsTask
    default_task = {
        **HalfCheetahTerrainEnv.default_task,
        "friction": 1.0,
        "payload": 0.0,
        "motor_strength": [1.0] * 6,
    }

    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        HalfCheetahTerrainEnv.apply_task(model, params[:-PHYSICS_DIM])
        friction, mass, inertia, gear = _physics_defaults()
        scale, payload, strength = params[-PHYSICS_DIM], params[-PHYSICS_DIM + 1], params[-6:]
        model.geom_friction[:, 0] = friction * scale
        model.body_mass[1] = mass + payload
        model.body_inertia[1] = inertia * ((mass + payload) / mass)
        model.actuator_gear[:, 0] = gear * strength

    @staticmethod
    def z_offset(params: np.ndarray) -> float:
        return HalfCheetahTerrainEnv.z_offset(params[:-PHYSICS_DIM])


class HalfCheetahTerrainPaceEnv(HalfCheetahTerrainPhysicsEnv):
    """HalfCheetahTerrainPhysics whose reward asks for a target pace (task: `TerrainPaceTask`).

    Reward -|v_x - v_target| - 0.05 |a|^2 (MAML's HalfCheetahVel terms) over the terrain and
    physics of `HalfCheetahTerrainPhysicsEnv`. Running flat out, which serves every robot of
    the forward-reward families about equally, is wrong here: the pace is known only through
    the reward, and holding it takes a different effort on every robot (weak motors, a
    payload, ice), so the history of rewards, states and actions is what tells the agent how
    to act. Default: the physics env's default robot asked for 1 m/s.
    """

    task_cls: ClassVar[type[MujocoTask]] = TerrainPaceTask
    default_task = {**HalfCheetahTerrainPhysicsEnv.default_task, "velocity": 1.0}
    ctrl_weight = 0.05

    @staticmethod
    def apply_task(model: mujoco.MjModel, params: np.ndarray) -> None:
        HalfCheetahTerrainPhysicsEnv.apply_task(model, params[:-1])

    @staticmethod
    def z_offset(params: np.ndarray) -> float:
        return HalfCheetahTerrainPhysicsEnv.z_offset(params[:-1])

    @staticmethod
    def forward(v: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.abs(v - params[:, -1])

    def forward1(self, v: float) -> float:
        return -abs(v - self._p[-1])


ENV_CLASSES: dict[str, type[_TaskEnv]] = {
    "metarl/HalfCheetahVel-v0": HalfCheetahVelEnv,
    "metarl/HalfCheetahDir-v0": HalfCheetahDirEnv,
    "metarl/AntDir-v0": AntDirEnv,
    "metarl/AntGoal-v0": AntGoalEnv,
    "metarl/HalfCheetahSlope-v0": HalfCheetahSlopeEnv,
    "metarl/AntSlope-v0": AntSlopeEnv,
    "metarl/HalfCheetahUphill-v0": HalfCheetahUphillEnv,
    "metarl/AntUphill-v0": AntUphillEnv,
    "metarl/HalfCheetahTerrain-v0": HalfCheetahTerrainEnv,
    "metarl/HalfCheetahTerrainPhysics-v0": HalfCheetahTerrainPhysicsEnv,
    "metarl/HalfCheetahTerrainPace-v0": HalfCheetahTerrainPaceEnv,
}
