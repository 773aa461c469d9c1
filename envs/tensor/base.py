"""Shared machinery of the batched tensor environments.

Every family (bandit, tabular MDP, 2-D navigation, gridworld games, CartPole, Pendulum) is
one file with four pieces built on this module, and states each of its parameters once:

- a frozen dataclass of task tensors with a leading task axis `T` (`metarl.tasks.TaskBatch`);
- a frozen config dataclass (its parameters, validated in `__post_init__`, with `horizon`);
- a batched env (`TensorVectorEnv`, a `gymnasium.vector.VectorEnv`) holding `N = T * E` copies
  in torch tensors on any device (copy `n` plays task `n // E`): the family's spaces, task
  sampling and dynamics, reading its parameters from `self.config`;
- a single-env view (`SingleEnvView`, a `gymnasium.Env`, numpy in/out) that *is* the batched
  env with one copy, so both run the same dynamics code.

The task distribution of a family is `TensorFamily(env_cls, config, device)` (what
`XVectorEnv.distribution(...)` and the registry build): it samples task batches and makes
the vector env for them, the `metarl.contracts.MetaRLDistribution` every RL learner uses.

Contract shared by all families
-------------------------------
- `reset(seed=None, options=None)` returns `(obs, {})`; `obs` is a torch tensor `[N, *obs_shape]`
  on the env's device. `options` may only hold `"tasks"`: a task batch with exactly `num_tasks`
  tasks (task `i` owns copies `i*E .. (i+1)*E - 1`). Without `"tasks"`, the env samples tasks
  from the family's `"train"` split with its own `torch.Generator` on the first reset and on
  every seeded reset, and keeps its current tasks on an unseeded reset. A trial boundary (new
  task) is therefore always a reset chosen by the caller; no step ever changes the task.
- `step(actions)` takes a tensor (or array) `[N, *action_shape]` and returns torch tensors
  `obs [N, ...]`, `reward [N]` float32, `terminated [N]` bool, `truncated [N]` bool and an info
  dict. `terminated` marks an absorbing state (goal reached, pole fallen); `truncated` marks the
  end of the fixed horizon (Gymnasium's time-limit convention). An episode ends at
  `terminated | truncated`.
- Autoreset is **same-step** (`AutoresetMode.SAME_STEP`, `metadata["autoreset_mode"]`): a copy
  whose episode ends at this step is reset inside the same call, to the same task; the returned
  `obs` row is the first observation of its next episode and the last observation of the
  finished episode is in `info["final_obs"]` (`[N, ...]`, meaningful where
  `info["_final_obs"]`, a `[N]` bool mask, is true). With `autoreset=False` (used by the
  single-env view) finished copies are left as they are until the caller resets.
- Randomness: each copy draws its noise from a counter-based stream keyed by
  `(seed + copy index, per-copy counter)`. `reset(seed=s)` seeds copy `n` with `s + n` (the same
  rule as Gymnasium's `SyncVectorEnv`), so the batched env equals a loop of single envs seeded
  `s, s+1, ...` number for number, on CPU and CUDA alike. Tasks are sampled with a
  `torch.Generator` owned by the env and seeded by `reset(seed=...)`.
- Bad input raises `metarl.errors.UsageError` with one line naming the parameter and its valid
  range: unknown options, tasks of the wrong type or count, out-of-range task parameters,
  actions of the wrong shape, NaN actions, discrete actions outside `[0, n)`. Box actions
  outside the space are clipped (the documented behaviour of every continuous family).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.checks import check_seed
from metarl.contracts import SPLITS, check_split
from metarl.errors import UsageError
from metarl.tasks import TaskBatch, check_task_batch

_M32 = 0xFFFFFFFF
NOISE_BLOCK_STEPS = 16
"""Env steps of step noise a CPU env draws at once (`TensorVectorEnv._block_uniform`)."""
ConfigT = TypeVar("ConfigT")
TaskT = TypeVar("TaskT", bound=TaskBatch)
_P = TypeVar("_P", bound="PhysicsTask")


# ---------------------------------------------------------------------------------------------
# Counter-based random numbers: pure integer arithmetic on int64 tensors, so the numbers are
# identical on every device and for every batch size. All products stay below 2**63.
# ---------------------------------------------------------------------------------------------
def _mix32(x: torch.Tensor, masked: bool = True) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply); output in `[0, 2**32)`. `masked=False`
    skips reducing the input mod 2**32, for callers whose input already lies in `[0, 2**32)`.

    `x = ((x >> 16) ^ x) * 0x45D9F3B & (2**32 - 1)` twice, then `(x >> 16) ^ x`; written with
    in-place kernels on fresh temporaries (one allocation per line, same integers)."""
    x = x & _M32 if masked else x
    for _ in range(2):
        y = x >> 16
        x = y.bitwise_xor_(x).mul_(0x45D9F3B).bitwise_and_(_M32)
    return (x >> 16).bitwise_xor_(x)


def hash_keys(keys: torch.Tensor) -> torch.Tensor:
    """Per-copy stream keys `[N]` int64 (seed + copy index) -> hashed keys `[N]`."""
    return _mix32((keys & _M32) ^ _mix32(((keys >> 32) & 0x7FFFFFFF) + 0x3C6EF372))


def random_bits(
    key_hash: torch.Tensor, counter: torch.Tensor, stream: int, num: int
) -> torch.Tensor:
    """Random 32-bit integers `[N, num]` for copies with hashed keys `[N]` at counters `[N]`.

    `stream` separates draws made at the same counter (0: step noise, 1: reset noise).
    """
    c = ((counter & 0x7FFFFFFF) * 0x7FEB352D + stream * 0x68E31DA4) & _M32
    h = _mix32(key_hash ^ _mix32(c, masked=False), masked=False)  # both below 2**32
    if num == 1:  # j = 0: h itself is below 2**32
        return _mix32(h[:, None], masked=False)
    j = torch.arange(num, device=key_hash.device, dtype=torch.int64) * 0x27D4EB2F
    return _mix32(h[:, None] + j[None, :])


def uniform(
    key_hash: torch.Tensor,
    counter: torch.Tensor,
    stream: int,
    num: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform numbers in `[0, 1)`, shape `[N, num]` (24 bits for float32, 32 for float64)."""
    bits = random_bits(key_hash, counter, stream, num)
    if dtype == torch.float64:
        return bits.to(torch.float64) * (1.0 / 4294967296.0)
    return (bits >> 8).to(dtype) * (1.0 / 16777216.0)


def normal_from_uniform(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Box-Muller: two uniforms in `[0, 1)` -> one standard normal of the same shape."""
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2.0 * math.pi) * u2)


# ---------------------------------------------------------------------------------------------
# Tasks are data (`metarl.tasks.TaskBatch`); checks for their fields.
# ---------------------------------------------------------------------------------------------
def check_task_tensor(
    name: str, value: Any, shape: tuple[int | None, ...], floating: bool = True
) -> None:
    """Check a task field is a tensor of `shape` (None: any size >= 1) with the right dtype."""
    if not isinstance(value, torch.Tensor):
        raise UsageError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    ok = value.dim() == len(shape) and all(
        (s is None and d >= 1) or s == d for s, d in zip(shape, value.shape, strict=False)
    )
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise UsageError(f"{name}: expected shape {want} (T >= 1), got {list(value.shape)}")
    if floating != value.dtype.is_floating_point:
        kind = "a floating" if floating else "an integer"
        raise UsageError(f"{name}: expected {kind} dtype, got {value.dtype}")


def check_in_range(
    name: str, value: torch.Tensor, low: float, high: float, low_open: bool = False
) -> None:
    """Raise unless every entry is finite and inside `[low, high]` (or `(low, high]`)."""
    above = value > low if low_open else value >= low
    if not bool((above & (value <= high)).all()):
        bracket = "(" if low_open else "["
        bad = value[~(above & (value <= high))].flatten()[0].item()
        raise UsageError(f"{name}: each value must lie in {bracket}{low}, {high}], got {bad}")


def check_sample_args(
    split: str, num_tasks: int, generator: Any, splits: tuple[str, ...] = SPLITS
) -> None:
    check_split(split, splits)
    if not isinstance(num_tasks, int) or isinstance(num_tasks, bool) or num_tasks < 1:
        raise UsageError(f"num_tasks: must be an integer >= 1, got {num_tasks!r}")
    if not isinstance(generator, torch.Generator):
        raise UsageError(f"generator: expected a torch.Generator, got {type(generator).__name__}")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive_float(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > minimum:
        raise UsageError(f"{name}: must be a number > {minimum}, got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{name}: must be finite, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# The batched env.
# ---------------------------------------------------------------------------------------------
class TensorVectorEnv(VectorEnv, Generic[ConfigT, TaskT]):
    """Base of the batched tensor envs; see the module docstring for the shared contract.

    A family sets `config_type` (its frozen config) and `task_type`, and implements
    `spaces(config)`, `sample_tasks(config, split, num_tasks, generator)`, `_init_state()`
    (per-copy state buffers), `_set_tasks(tasks)`, `_reset_envs(mask) -> obs [N, ...]` and
    `_step(actions) -> (obs, reward, terminated)`; the base counts steps (`self._elapsed`)
    and truncates at `config.horizon`. Noise for copy `n` comes from
    `self._uniform(stream, num)`; `_step` uses stream 0 and `_reset_envs` stream 1, and the base
    class advances each copy's counter after every step and every reset of that copy.

    Construction: `XVectorEnv(num_envs, envs_per_task, device, ..., config=cfg)` or with the
    config's fields as keywords, `XVectorEnv(num_envs=8, num_arms=3)`.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    config_type: ClassVar[type]
    task_type: ClassVar[type]
    splits: ClassVar[tuple[str, ...]] = SPLITS
    terminates: ClassVar[bool] = True
    """False for families that never set `terminated` (every episode lasts `horizon` steps)."""

    def __init__(
        self,
        num_envs: int = 1,
        envs_per_task: int = 1,
        device: torch.device | str = "cpu",
        autoreset: bool = True,
        check_actions: bool = True,
        config: ConfigT | None = None,
        **params: Any,
    ) -> None:
        if config is not None and params:
            raise UsageError(f"give either config= or its fields as keywords, not both: {params}")
        self.config: ConfigT = config if config is not None else self.config_type(**params)
        single_observation_space, single_action_space = self.spaces(self.config)
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.envs_per_task = check_positive_int("envs_per_task", envs_per_task)
        if num_envs % envs_per_task:
            raise UsageError(
                f"num_envs: must be a multiple of envs_per_task={envs_per_task}, got {num_envs}"
            )
        self.num_tasks = num_envs // envs_per_task
        self.device = torch.device(device)
        self.autoreset = bool(autoreset)
        self.check_actions = bool(check_actions)
        mode = AutoresetMode.SAME_STEP if self.autoreset else AutoresetMode.DISABLED
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.tasks: TaskT | None = None
        self.task_generator = torch.Generator()  # CPU: the same tasks on every device
        self.task_id = torch.arange(num_envs, device=self.device) // envs_per_task  # [N]
        self._key_hash: torch.Tensor | None = None
        self._counter = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._draw_index = torch.arange(64, device=self.device)  # [64]: j of the j-th number
        self._noise_blocks: dict[tuple[int, int, torch.dtype], tuple[torch.Tensor, ...]] = {}
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._act_bounds: tuple[float, float] | None = None
        if isinstance(single_action_space, spaces.Box):
            self._act_low = torch.as_tensor(single_action_space.low, device=self.device)
            self._act_high = torch.as_tensor(single_action_space.high, device=self.device)
            low, high = np.unique(single_action_space.low), np.unique(single_action_space.high)
            if len(low) == 1 and len(high) == 1:  # one bound for every coordinate: a scalar
                self._act_bounds = (float(low[0]), float(high[0]))  # clamp (one fused kernel)
        self._init_state()

    @classmethod
    def distribution(
        cls, *args: Any, device: torch.device | str = "cpu", **params: Any
    ) -> TensorFamily:
        """The family's task distribution: `distribution(config, device=...)`, or the
        config's fields positionally / as keywords (`BanditVectorEnv.distribution(num_arms=3)`)."""
        if len(args) == 1 and isinstance(args[0], cls.config_type) and not params:
            config = args[0]
        else:
            config = cls.config_type(*args, **params)
        return TensorFamily(cls, config, device)

    # -- what a family implements ---------------------------------------------------------------
    @classmethod
    def spaces(cls, config: Any) -> tuple[spaces.Space, spaces.Space]:
        """The single observation and action spaces for `config`."""
        raise NotImplementedError

    @classmethod
    def sample_tasks(
        cls, config: Any, split: str, num_tasks: int, generator: torch.Generator
    ) -> TaskBatch:
        """`num_tasks` tasks of `split`, drawn with `generator` only (on its device)."""
        raise NotImplementedError

    def _init_state(self) -> None:
        """Allocate the per-copy state buffers `[N, ...]` (called once by `__init__`)."""

    def _set_tasks(self, tasks: TaskT) -> None:
        raise NotImplementedError

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the dynamics: `(obs [N, ...], reward [N] float32, terminated [N] bool)`;
        the base class adds the time limit and the autoreset."""
        raise NotImplementedError

    # -- helpers for subclasses ----------------------------------------------------------------
    def _uniform(
        self,
        stream: int,
        num: int,
        dtype: torch.dtype = torch.float32,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`[N, num]` uniforms from each copy's stream at its current counter; with `rows`
        (indices `[R]`) only those copies' `[R, num]`, the same numbers as those rows of the
        full draw."""
        assert self._key_hash is not None
        if rows is not None:
            return uniform(self._key_hash[rows], self._counter[rows], stream, num, dtype)
        steps = self._noise_block_steps()
        if steps <= 1 or num > self._draw_index.numel():
            return uniform(self._key_hash, self._counter, stream, num, dtype)
        return self._block_uniform(stream, num, dtype, steps)

    def _host_reads_are_free(self) -> bool:
        """True on the CPU, where reading a tensor's values on the host costs nothing, so the
        env takes its CPU paths: noise in blocks (`_noise_block_steps`), reset noise only for
        the copies being reset (`_reset_rows`), no reset work on a step where no copy is
        done. False on accelerators, where each such read would make the host wait for the
        device; the accelerator paths give the same numbers (tests/envs/test_cpu_paths.py)."""
        return self.device.type == "cpu"

    def _noise_block_steps(self) -> int:
        """How many counters of every copy's stream a full draw computes at once: on the CPU
        `NOISE_BLOCK_STEPS` (checking that the cached block still covers each copy's counter
        reads the counters on the host); 1 (no cache) on accelerators."""
        return NOISE_BLOCK_STEPS if self._host_reads_are_free() else 1

    def _block_uniform(self, stream: int, num: int, dtype: torch.dtype, steps: int) -> torch.Tensor:
        """`[N, num]` uniforms at the copies' current counters, read from a block
        `[N, steps, num]` drawn for counters `base .. base + steps - 1` of each copy (`base`:
        the counters when the block was drawn). A draw is a pure function of (key, counter,
        stream), so these are the numbers of `uniform(key_hash, counter, ...)` bit for bit; the
        block amortises the ~35 small integer kernels of the hash over `steps` env steps. It is
        drawn again when a copy's counter leaves it (counters grow by one per step and one per
        reset of that copy) and dropped when `reset(seed=...)` changes the keys."""
        assert self._key_hash is not None
        key = (stream, num, dtype)
        cached = self._noise_blocks.get(key)
        if cached is not None:
            base, block = cached
            offset = self._counter - base  # [N]
            low, high = torch.aminmax(offset)
            if int(low) >= 0 and int(high) < steps:
                at = (offset * num)[:, None] + self._draw_index[:num]  # [N, num]
                return block.view(self.num_envs, steps * num).gather(1, at)
        n = self.num_envs
        ahead = torch.arange(steps, dtype=torch.int64, device=self.device)
        counters = (self._counter[:, None] + ahead[None, :]).reshape(n * steps)
        keys = self._key_hash.repeat_interleave(steps)
        block = uniform(keys, counters, stream, num, dtype).view(n, steps, num)
        self._noise_blocks[key] = (self._counter.clone(), block)
        return block[:, 0]

    def _reset_rows(self, mask: torch.Tensor) -> torch.Tensor | None:
        """The copies `_reset_envs(mask)` must reset, as indices `[R]`, on the CPU (where
        finding them is free, so a step draws reset noise only for the copies that need it);
        `None` on accelerators: there the family recomputes every row and keeps the old state
        where `mask` is false, which gives the same numbers without waiting for the device."""
        return mask.nonzero().squeeze(1) if self._host_reads_are_free() else None

    def _zeros(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A state buffer `[N, *shape]` of zeros on the env's device."""
        return torch.zeros(self.num_envs, *shape, dtype=dtype, device=self.device)

    # -- Gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy. Returns `obs [N, *obs_shape]` (torch, on `device`) and `{}`."""
        seed = check_seed(seed)
        super().reset(seed=seed)
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise UsageError(f"options: expected a dict or None, got {type(options).__name__}")
        unknown = sorted(set(options) - {"tasks"})
        if unknown:
            raise UsageError(f"options: unknown key(s) {unknown}; the only valid option is 'tasks'")
        if seed is None and self._key_hash is None:
            seed = int(torch.Generator().seed() % (2**62))  # unseeded first reset: fresh entropy
        if seed is not None:
            self.task_generator.manual_seed(seed)
            keys = seed + torch.arange(self.num_envs, dtype=torch.int64, device=self.device)
            self._key_hash = hash_keys(keys)
            self._counter.zero_()
            self._noise_blocks.clear()
        if "tasks" in options:
            tasks: TaskT = options["tasks"]
            check_task_batch(tasks, self.task_type, self.num_tasks)
            self._check_env_tasks(tasks)
            self.tasks = tasks.to(self.device)
            self._set_tasks(self.tasks)
        elif self.tasks is None or seed is not None:
            drawn = self.sample_tasks(self.config, "train", self.num_tasks, self.task_generator)
            tasks = drawn.to(self.device)  # type: ignore[assignment]
            self.tasks = tasks
            self._set_tasks(tasks)
        obs = self._reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._counter += 1
        return obs, {}

    def _check_env_tasks(self, tasks: TaskT) -> None:
        """Hook: reject tasks that do not fit this env's fixed sizes (e.g. number of arms)."""

    def step(
        self, actions: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every copy once. Shapes: actions `[N, *action_shape]` -> obs `[N, ...]`,
        reward `[N]`, terminated `[N]`, truncated `[N]`; info holds `final_obs`/`_final_obs`
        when autoreset is on. `truncated` is the time limit: `config.horizon` steps."""
        if self.tasks is None:
            raise UsageError("step() called before reset(); call reset() first")
        actions = self._check_actions(actions)
        obs, reward, terminated = self._step(actions)
        self._counter += 1
        self._elapsed += 1
        truncated = self._elapsed >= self.config.horizon  # type: ignore[attr-defined]
        if not self.autoreset:
            return obs, reward, terminated, truncated, {}
        done = terminated | truncated
        final_obs = obs
        if self._host_reads_are_free() and not bool(done.any()):
            # no copy to reset: every row keeps its state, so the reset would return `obs`
            return (
                obs.clone(),
                reward,
                terminated,
                truncated,
                {"final_obs": obs, "_final_obs": done},
            )
        obs = self._reset_envs(done)  # rows not done keep their state
        self._elapsed.masked_fill_(done, 0)
        self._counter += done
        return obs, reward, terminated, truncated, {"final_obs": final_obs, "_final_obs": done}

    def _check_actions(self, actions: Any) -> torch.Tensor:
        space = self.single_action_space
        try:
            a = torch.as_tensor(actions, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            raise UsageError(
                f"actions: expected a tensor or array, got {type(actions).__name__}"
            ) from None
        want = (self.num_envs, *(space.shape or ()))
        if tuple(a.shape) != want:
            raise UsageError(
                f"actions: expected shape {list(want)} ([num_envs, ...]), got {list(a.shape)}"
            )
        if isinstance(space, spaces.Discrete):
            if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
                raise UsageError(
                    f"actions: expected integers in [0, {int(space.n) - 1}], got dtype {a.dtype}"
                )
            a = a.to(torch.int64)
            if self.check_actions and not _all_in(a, int(space.n)):
                bad = a[(a < 0) | (a >= int(space.n))][0].item()
                raise UsageError(
                    f"actions: each must be an integer in [0, {int(space.n) - 1}], got {bad}"
                )
            return a
        # Box: NaN is rejected, anything else outside the space is clipped.
        assert isinstance(space, spaces.Box)
        if a.dtype.is_complex or a.dtype == torch.bool:
            raise UsageError(f"actions: expected real numbers, got dtype {a.dtype}")
        a = a.to(self._act_low.dtype)
        if self.check_actions and a.numel() and bool(a.amax().isnan()):  # max propagates NaN
            raise UsageError(
                f"actions: NaN is not allowed; valid range [{space.low.min()}, {space.high.max()}] (clipped)"
            )
        if self._act_bounds is not None:
            return a.clamp(*self._act_bounds)
        return torch.clamp(a, self._act_low, self._act_high)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, envs_per_task={self.envs_per_task}, device={self.device})"


def _all_in(actions: torch.Tensor, n: int) -> bool:
    """Every discrete action in `[0, n)` (one min-max reduction)."""
    if actions.numel() == 0:
        return True
    low, high = torch.aminmax(actions)
    return bool(low >= 0) and bool(high < n)


# ---------------------------------------------------------------------------------------------
# The task distribution of a family.
# ---------------------------------------------------------------------------------------------
class TensorFamily:
    """The `metarl.contracts.MetaRLDistribution` of one tensor family and config.

    `sample(split, num_tasks, generator)` draws a task batch (on `device`);
    `make_env(num_tasks, envs_per_task, device)` makes the batched env for such batches.
    The splits are the family's (`env_cls.splits`); `horizon`, `observation_space` and
    `action_space` follow from the config.
    """

    renderable = False

    def __init__(
        self, env_cls: type[TensorVectorEnv], config: Any, device: torch.device | str = "cpu"
    ) -> None:
        self.env_cls, self.config, self.device = env_cls, config, torch.device(device)
        self.splits = env_cls.splits
        self.horizon: int = int(config.horizon)
        self.observation_space, self.action_space = env_cls.spaces(config)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Any:
        """`num_tasks` tasks of `split` on `self.device`, drawn with `generator` only."""
        check_sample_args(split, num_tasks, generator, self.splits)
        tasks = self.env_cls.sample_tasks(self.config, split, num_tasks, generator)
        return tasks.to(self.device)

    def make_env(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: torch.device | str | None = None,
        horizon: int | None = None,
        **kwargs: Any,
    ) -> TensorVectorEnv:
        """`num_tasks * envs_per_task` copies on `device` (default: the distribution's).
        A tensor family's episode length is its `task.horizon`: `horizon` must equal it."""
        if horizon is not None and horizon != self.horizon:
            raise UsageError(
                f"horizon {horizon} differs from the task's episode length {self.horizon}; "
                f"set task.horizon={horizon} instead"
            )
        num_tasks = check_positive_int("num_tasks", num_tasks)
        envs_per_task = check_positive_int("envs_per_task", envs_per_task)
        return self.env_cls(
            num_tasks * envs_per_task,
            envs_per_task,
            self.device if device is None else device,
            config=self.config,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"TensorFamily({self.env_cls.__name__}, {self.config}, device={self.device})"


# ---------------------------------------------------------------------------------------------
# The single-env view.
# ---------------------------------------------------------------------------------------------
class SingleEnvView(gymnasium.Env):
    """A `gymnasium.Env` (numpy in/out) that is the batched env with one copy and one task.

    `reset(seed, options)` forwards to the batched env (so `options={"tasks": task}` with a
    one-task batch sets the task; without it the task is sampled from the `"train"` split on the
    first and on every seeded reset). No autoreset: after `terminated` or `truncated`, call
    `reset()`; the task stays the same unless new tasks are passed.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    vector_cls: ClassVar[type[TensorVectorEnv]]

    def __init__(
        self, device: torch.device | str = "cpu", render_mode: str | None = None, **kwargs: Any
    ) -> None:
        if render_mode is not None:
            raise UsageError(
                f"render_mode: these envs do not render; use None, got {render_mode!r}"
            )
        self.vec = self.vector_cls(
            num_envs=1, envs_per_task=1, device=device, autoreset=False, **kwargs
        )
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self.render_mode = None

    @property
    def tasks(self) -> Any:
        """The current one-task batch (`T = 1`)."""
        return self.vec.tasks

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        seed = check_seed(seed)
        super().reset(seed=seed)
        obs, info = self.vec.reset(seed=seed, options=options)
        return obs[0].cpu().numpy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = action[None] if isinstance(action, torch.Tensor) else np.asarray(action)[None]
        obs, reward, terminated, truncated, _ = self.vec.step(a)  # the vector env's checks
        return obs[0].cpu().numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}


def sample_scales(
    split: str,
    shape: tuple[int, ...],
    generator: torch.Generator,
    train_scale: float,
    test_scale: float,
) -> torch.Tensor:
    """Multiplicative factors `shape` for physical parameters (float64, on the generator's device).

    `train` and `val`: log-uniform in `[1/train_scale, train_scale]`. `test`: log-uniform in the
    held-out band `[1/test_scale, 1/train_scale] U [train_scale, test_scale]` (extrapolation
    beyond the training range); if `test_scale == train_scale`, the test split equals train.
    """
    lo, hi = math.log(train_scale), math.log(test_scale)
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    if split != "test" or hi <= lo:
        return torch.exp((2.0 * u - 1.0) * lo)
    sign = (
        torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64) < 0.5
    )
    mag = lo + u * (hi - lo)
    return torch.exp(torch.where(sign, -mag, mag))


def sample_physics(
    task_type: type[_P],
    config: PhysicsConfig,
    split: str,
    num_tasks: int,
    generator: torch.Generator,
) -> _P:
    """A `task_type` batch (float64 `[T]` fields on the generator's device): each parameter's
    default, times `sample_scales` factors for the names in `config.vary` (drawn in the order
    of `task_type.PARAMS`)."""
    values = {}
    lo, hi = config.train_scale, config.test_scale
    for name, (default, _) in task_type.PARAMS.items():
        v = torch.full((num_tasks,), default, dtype=torch.float64)
        if name in config.vary:
            v = default * sample_scales(split, (num_tasks,), generator, lo, hi)
        values[name] = v.to(generator.device)
    return task_type(**values)


class PhysicsTask(TaskBatch):
    """Mixin for task batches of physical parameters: one float field `[T]` per name of the
    family's `PARAMS` (`{name: (default, largest accepted value)}`), each in
    `[default / 100, largest]`: the scale bands reach at most 100x either way, and much
    lighter or shorter bodies make the dynamics overflow to inf / NaN."""

    PARAMS: ClassVar[dict[str, tuple[float, float]]]

    def __post_init__(self) -> None:
        first = getattr(self, next(iter(self.PARAMS)))
        t = first.shape[0] if isinstance(first, torch.Tensor) and first.dim() else None
        for name, (default, high) in self.PARAMS.items():
            where = f"{type(self).__name__}.{name}"
            check_task_tensor(where, getattr(self, name), (t,))
            check_in_range(where, getattr(self, name), default / 100, high)

    @classmethod
    def default(cls: type[_P], num_tasks: int = 1, device: torch.device | str = "cpu") -> _P:
        """The family's default parameters (Gymnasium's), repeated `num_tasks` times."""
        return cls(
            **{
                k: torch.full((num_tasks,), d, dtype=torch.float64, device=device)
                for k, (d, _) in cls.PARAMS.items()
            }
        )


@dataclass(frozen=True)
class PhysicsConfig:
    """Config fields shared by the physics families; a family adds `vary`'s default (all of
    its `PARAMS`), its own constants and `horizon`."""

    PARAMS: ClassVar[dict[str, tuple[float, float]]]
    vary: list[str] = field(default_factory=list)
    """Parameters that vary per task (the others stay at their defaults)."""
    train_scale: float = 2.0
    """train/val: each varied parameter is default * s, log s ~ U[-log train_scale, log train_scale]."""
    test_scale: float = 3.0
    """test: s in the held-out band [1/test_scale, 1/train_scale] U [train_scale, test_scale]."""

    def __post_init__(self) -> None:
        check_physics(self.PARAMS, self.vary, self.train_scale, self.test_scale)


def check_physics(params: dict[str, Any], vary: Any, train_scale: Any, test_scale: Any) -> None:
    """Validate a physics family's `vary` (names of `params`) and its scale bands."""
    unknown = [v for v in vary if v not in params]
    if unknown:
        raise UsageError(f"vary: unknown parameter(s) {unknown}; choose from {', '.join(params)}")
    check_scales(train_scale, test_scale)


def check_scales(train_scale: Any, test_scale: Any) -> tuple[float, float]:
    train = check_positive_float("train_scale", train_scale, 1.0 - 1e-12)
    test = check_positive_float("test_scale", test_scale, 1.0 - 1e-12)
    if train < 1.0 or test < train or test > 100.0:
        raise UsageError(
            f"train_scale, test_scale: need 1 <= train_scale <= test_scale <= 100, got {train_scale}, {test_scale}"
        )
    return train, test
