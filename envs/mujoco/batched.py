"""Many tasks x copies of one MuJoCo family stepped in one call, without Gymnasium overhead.

`BatchedMujocoEnv` is the `metarl.contracts.MetaVectorEnv` of the MuJoCo families (made by
`MujocoFamily.make_env`, or `gymnasium.make_vec(id, num_envs=n)`). It holds one `MjModel`
(its task written in) and one `MjData` per copy and steps them all with `mujoco.mj_step`;
rewards and observations come from the same batched kernels as the single env
(`locomotion.py`), so for the same task, seed and actions it gives the same numbers as
`gymnasium.make(id)` copy by copy (tested).

Layout: `num_envs = num_tasks * envs_per_task` copies, task-major: copy i runs task
`i // envs_per_task`. The layout is fixed when the env is made (`envs_per_task`, default
`num_envs // len(tasks)`); `reset(options={"tasks": tasks})` takes exactly `num_tasks` tasks.

Autoreset: `AutoresetMode.SAME_STEP`, the one behaviour of every vector env here. A copy whose
episode ends at a step (terminated: the Ant fell; truncated: `max_episode_steps`, 200 by
default) is reset inside that `step`, on the same task, drawing its reset noise from its own
generator exactly as `reset(options={"reset_mask": done})` right after the step would (tested
against single envs reset by hand). The returned observation row is its next first
observation; the finished one is in `info["final_obs"]` (`[N, obs_dim]`, meaningful where
the `[N]` bool mask `info["_final_obs"]` is set); reward, flags and the other info entries
are those of the finishing transition. No copy is ever frozen: every copy steps every call.

Resets. `reset()` resets every copy; `reset(options={"reset_mask": mask})` only the masked ones
(same task). A reset with `options={"tasks": ...}` is a trial boundary (all copies, no mask);
one without is an episode boundary of the same tasks. Seeds: an int `s` seeds copy i with
`s + i` (as Gymnasium's vector envs), a list one per copy; `None` keeps each copy's generator
running. Actions: a numpy array or a torch tensor `[N, nu]` (any device; float64 on the CPU).

Threads: `num_threads` (default: torch's thread count -- `OMP_NUM_THREADS` or
`torch.set_num_threads`, so a run given one thread uses one core -- at most 8) threads step contiguous
chunks of copies in parallel, at least `MIN_CHUNK` each (with fewer, waking the threads cost
more than they saved here); `mujoco.mj_step` releases the GIL, and every copy has its own
`MjModel`/`MjData`, so the numbers are the same for any thread count (tested). The rewards and
observations are then computed for all copies at once with numpy on the stacked `[B, nq]`,
`[B, nv]` state.
"""

from __future__ import annotations

import copy
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.checks import check_seed
from envs.mujoco._common import check_actions
from envs.mujoco.locomotion import ENV_CLASSES, Snapshot, reset_state  # noqa: E402
from metarl.errors import UsageError  # noqa: E402
from metarl.tasks import check_task_batch  # noqa: E402

# Copies per thread below which waking the thread costs more than it saves (measured here:
# a cheetah step is ~50 us of physics, an Ant step ~350 us).
MIN_CHUNK = {"half_cheetah": 8, "ant": 2}


class BatchedMujocoEnv(VectorEnv):
    """`num_envs` copies of one family; step `[B, nu]` actions -> obs `[B, obs_dim]`, reward,
    terminated, truncated `[B]` and info (arrays `[B]`: `x_position`, the reward terms and
    `final_obs` `[B, obs_dim]` / `_final_obs` `[B]`). Same-step autoreset (module docstring).

    `tasks`: the initial tasks (a task batch or a mapping of its fields; default: the family's
    default task for every copy); `envs_per_task`: copies per task (default
    `num_envs // len(tasks)`)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        max_episode_steps: int | None = 200,
        tasks: Any = None,
        num_threads: int | None = None,
        envs_per_task: int | None = None,
    ):
        if env_id not in ENV_CLASSES:
            raise UsageError(f"unknown env id {env_id!r}; choose one of {', '.join(ENV_CLASSES)}")
        if not isinstance(num_envs, int) or num_envs < 1:
            raise UsageError(f"num_envs must be a positive integer; got {num_envs!r}")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int) or max_episode_steps < 1
        ):
            raise UsageError(
                f"max_episode_steps must be a positive integer or None; got {max_episode_steps!r}"
            )
        if num_threads is None:  # torch's thread budget (OMP_NUM_THREADS), so one run = one core
            num_threads = min(8, os.cpu_count() or 1, torch.get_num_threads())
        if not isinstance(num_threads, int) or num_threads < 1:
            raise UsageError(f"num_threads must be a positive integer; got {num_threads!r}")
        self.env_id, self.num_envs = env_id, num_envs
        self.num_threads = min(num_threads, num_envs)
        # The calling thread steps the first chunk; the pool (created on first use) the others.
        self._pool: ThreadPoolExecutor | None = None
        self.max_episode_steps = max_episode_steps
        self._cls = cls = ENV_CLASSES[env_id]
        tasks = cls.task_cls.coerce(cls.default_task if tasks is None else tasks)
        if envs_per_task is None:
            if num_envs % tasks.num_tasks != 0:
                raise UsageError(
                    f"num_envs ({num_envs}) must be a multiple of the number of tasks "
                    f"({tasks.num_tasks})"
                )
            envs_per_task = num_envs // tasks.num_tasks
        if not isinstance(envs_per_task, int) or envs_per_task < 1:
            raise UsageError(f"envs_per_task must be a positive integer; got {envs_per_task!r}")
        if num_envs % envs_per_task != 0:
            raise UsageError(
                f"num_envs ({num_envs}) must be a multiple of envs_per_task ({envs_per_task})"
            )
        self.num_tasks, self.envs_per_task = num_envs // envs_per_task, envs_per_task
        if tasks.num_tasks == 1 and self.num_tasks > 1:  # one task for every copy
            tasks = tasks.select(torch.zeros(self.num_tasks, dtype=torch.long))
        check_task_batch(tasks, cls.task_cls, self.num_tasks)
        self._template = template = cls(task=tasks.select(0))  # spaces, init state, kernels
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._low, self._high = template._low, template._high
        self._nu, self._frame_skip, self.dt = template.model.nu, template.frame_skip, template.dt
        self._qpos0, self._qvel0 = template.init_qpos.copy(), template.init_qvel.copy()
        self._ant = template.robot == "ant"
        self.models = [copy.copy(template.model) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        nq, nv = template.model.nq, template.model.nv
        self._qpos = np.zeros((num_envs, nq))
        self._qvel = np.zeros((num_envs, nv))
        self._pos = np.zeros((num_envs, 2 if self._ant else 1))
        nb = template.model.nbody - 1
        self._cfrc = np.zeros((num_envs, nb, 6)) if self._ant else None
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._started = False  # every copy reset at least once (has a generator)
        self._renderers: dict[tuple[int, int, int], mujoco.Renderer] = {}
        self._set_tasks(tasks)

    # --- tasks ------------------------------------------------------------------------------
    def _set_tasks(self, tasks: Any) -> None:
        """Write `num_tasks` validated tasks into the copies' models (task-major)."""
        self.tasks = tasks
        params = tasks.features(torch.float64).cpu().numpy()  # [T, P]
        self._params = np.repeat(params, self.envs_per_task, axis=0)  # [B, P]
        self._z0 = np.array([self._cls.z_offset(p) for p in self._params])
        for m, p in zip(self.models, self._params, strict=False):
            self._cls.apply_task(m, p)
        self._close_renderers()  # a renderer holds its model's height field as uploaded

    # --- rendering --------------------------------------------------------------------------
    def render_copy(self, i: int, width: int = 160, height: int = 120) -> np.ndarray:
        """Copy `i` as an RGB image `[height, width, 3]` uint8, seen from the side by a camera
        tracking the torso (headless: EGL unless `MUJOCO_GL` says otherwise). The image is in
        the task's frame: on a slope the floor looks level and gravity is tilted."""
        if not 0 <= i < self.num_envs:
            raise UsageError(f"copy index {i} out of range [0, {self.num_envs})")
        key = (i, width, height)
        if key not in self._renderers:
            m = self.models[i]
            m.vis.global_.offwidth = max(m.vis.global_.offwidth, width)
            m.vis.global_.offheight = max(m.vis.global_.offheight, height)
            self._renderers[key] = mujoco.Renderer(m, height, width)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = 1  # the torso
        cam.distance, cam.azimuth, cam.elevation = (
            (5.0, 90.0, -20.0) if self._ant else (4.0, 90.0, -10.0)
        )
        renderer = self._renderers[key]
        renderer.update_scene(self.datas[i], camera=cam)
        return renderer.render().copy()

    def _close_renderers(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # --- gymnasium VectorEnv API ------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if options is not None and not isinstance(options, dict):
            raise UsageError("reset options must be a dict with keys tasks, reset_mask")
        options = dict(options or {})
        unknown = [k for k in options if k not in ("tasks", "reset_mask")]
        if unknown:
            raise UsageError(
                f"unknown reset option {unknown[0]!r}; valid options: tasks, reset_mask"
            )
        mask = options.get("reset_mask")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise UsageError(f"reset_mask must be a bool array of shape [{self.num_envs}]")
        if options.get("tasks") is not None:
            if not mask.all():
                raise UsageError("new tasks reset every copy: do not pass reset_mask with tasks")
            tasks = self._cls.task_cls.coerce(options["tasks"])
            check_task_batch(tasks, self._cls.task_cls, self.num_tasks)
            self._set_tasks(tasks)
        seeds = self._seeds(seed)
        for i in np.flatnonzero(mask):
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        self._reset_copies(mask)
        self._started = all(r is not None for r in self._rngs)
        return self._cls.observe(self._qpos, self._qvel, self._cfrc), {}

    def _reset_copies(self, mask: np.ndarray) -> None:
        """Start a new episode in the copies of `mask` `[N]` with their own generators."""
        for i in np.flatnonzero(mask).tolist():
            m, d, rng = self.models[i], self.datas[i], self._rngs[i]
            assert rng is not None  # every reset gives a copy its generator first
            mujoco.mj_resetData(m, d)
            qpos, qvel = reset_state(rng, self._qpos0, self._qvel0, self._z0[i])
            d.qpos[:] = qpos
            d.qvel[:] = qvel
            mujoco.mj_forward(m, d)
            self._read(i, d)
        self._t[mask] = 0

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if not isinstance(seed, (list, tuple)):
            first = check_seed(seed)
            assert first is not None
            return [first + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise UsageError(f"seed must be an int or a list of {self.num_envs} seeds")
        return [check_seed(s) for s in seed]

    def _read(self, i: int, d: mujoco.MjData) -> None:
        self._qpos[i] = d.qpos
        self._qvel[i] = d.qvel
        if self._cfrc is not None:  # the Ant
            self._pos[i] = d.xpos[1, :2]
            self._cfrc[i] = d.cfrc_ext[1:]
        else:
            self._pos[i, 0] = d.qpos[0]

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise UsageError("call reset() before step() (every copy needs a first episode)")
        a = check_actions(actions, self._low, self._high, (self.num_envs, self._nu))
        pos0 = self._pos.copy()
        idx = np.arange(self.num_envs)
        chunks = np.array_split(
            idx, max(1, min(self.num_threads, idx.size // MIN_CHUNK[self._cls.robot]))
        )
        if len(chunks) == 1:
            self._step_copies(chunks[0], a)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_threads - 1, "BatchedMujocoEnv")
            futures = [self._pool.submit(self._step_copies, c, a) for c in chunks[1:]]
            self._step_copies(chunks[0], a)
            for f in futures:
                f.result()
        snap = Snapshot(self._pos, self._qpos, self._qvel, self._cfrc)
        reward, terminated, terms = self._cls.reward(pos0, snap, a, self._params, self.dt)
        obs = self._cls.observe(self._qpos, self._qvel, self._cfrc)
        self._t += 1
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = self._t >= self.max_episode_steps  # as TimeLimit
        done = terminated | truncated
        info = {"x_position": self._qpos[:, 0].copy(), **terms}
        info["final_obs"], info["_final_obs"] = obs.copy(), done
        if done.any():  # same-step autoreset: the next episode of the same task
            self._reset_copies(done)
            obs[done] = self._cls.observe(
                self._qpos[done], self._qvel[done], None if self._cfrc is None else self._cfrc[done]
            )
        return obs, reward, terminated, truncated, info

    def _step_copies(self, idx: np.ndarray, a: np.ndarray) -> None:
        """Step copies `idx` (run by one thread; each copy's model, data and rows are its own)."""
        n, models, datas = self._frame_skip, self.models, self.datas
        qpos, qvel, pos = self._qpos, self._qvel, self._pos
        for i in idx.tolist():
            m, d = models[i], datas[i]
            d.ctrl[:] = a[i]
            mujoco.mj_step(m, d, nstep=n)
            if self._ant:  # contact forces for the Ant observation and cost (not the cheetah)
                mujoco.mj_rnePostConstraint(m, d)
                pos[i] = d.xpos[1, :2]
                self._cfrc[i] = d.cfrc_ext[1:]  # type: ignore[index]
            qpos[i] = d.qpos
            qvel[i] = d.qvel
        if not self._ant:
            pos[idx, 0] = qpos[idx, 0]

    def close_extras(self, **kwargs: Any) -> None:
        self._close_renderers()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._template.close()


def vector_entry_point(env_id: str) -> Any:
    """A `gymnasium.make_vec` entry point for `env_id` (`num_envs`, `max_episode_steps`)."""
    return functools.partial(BatchedMujocoEnv, env_id)
