"""Policies for meta-RL: MLP (categorical / Gaussian), recurrent (GRU) and memory-augmented.

All of them are plain `nn.Module`s whose `forward` is a pure function of (parameters, inputs),
so MAML-RL adapts them with `torch.func.functional_call(policy, params, inputs)`; nothing
mutates the module. `forward` returns a `torch.distributions` object (and, for the recurrent
policies, values and the next state).

Recurrent policies (RL², memory policy) see `[obs_t, a_{t-1}, r_{t-1}, done_{t-1}]`; the
previous action is one-hot for discrete actions (an action `< 0` encodes "none", at the start
of a trial, as a zero vector). Their state is explicit, in and out; `reset(state, mask)` puts
the rows of `mask` back to the initial state -- call it at *trial* boundaries, never at episode
boundaries inside a trial, so the agent keeps what it learnt about the task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from metarl.errors import UsageError, check_finite
from metarl.inner_loop import Params
from metarl.memory import MemoryCore, MemoryState

Head = Literal["categorical", "gaussian"]


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be >= 1, got {value}")


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """Linear layers `sizes[0] -> ... -> sizes[-1]` with `activation` between (not after)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _per_task_mlp(net: nn.Sequential, params: Params, obs: Tensor) -> Tensor:
    """`net` (the module's `net` attribute) with per-task parameters `params["net.*"]`
    `[T, ...]` on obs `[T, ..., O]`: `[T, ..., out]`, one `baddbmm` per linear layer."""
    num_tasks, shape = obs.shape[0], obs.shape[1:-1]
    h = obs.reshape(num_tasks, -1, obs.shape[-1])  # [T, N, O]
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            w, b = params[f"net.{i}.weight"], params[f"net.{i}.bias"]  # [T, out, in], [T, out]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        else:
            h = layer(h)
    return h.reshape(num_tasks, *shape, h.shape[-1])


class CategoricalMLPPolicy(nn.Module):
    """`forward(obs [..., obs_dim]) -> Categorical` over `num_actions`, batch shape `[...]`.

    `per_task(params, obs)`: the same policy with one parameter set per task (see there)."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        _positive("obs_dim", obs_dim)
        if num_actions < 2:
            raise UsageError(f"a categorical policy needs >= 2 actions, got {num_actions}")
        self.obs_dim, self.num_actions = obs_dim, num_actions
        self.net = mlp([obs_dim, *hidden_sizes, num_actions], activation)

    def forward(self, obs: Tensor) -> Categorical:
        logits = check_finite(self.net(obs), "policy logits")
        return Categorical(logits=logits, validate_args=False)  # checked: no sync per step

    def per_task(self, params: Params, obs: Tensor) -> Categorical:
        """Per-task parameters `[T, ...]` (this module's names) on obs `[T, ..., O]`: a
        distribution of batch shape `[T, ...]`. Equal to `forward` with `params[t]` on
        `obs[t]` for each t (tested), in one batched matmul per layer: MAML-RL's per-step
        forward for all tasks (`functional_call` under `vmap` is ~25x slower on CPU)."""
        return Categorical(logits=_per_task_mlp(self.net, params, obs), validate_args=False)


class GaussianMLPPolicy(nn.Module):
    """`forward(obs [..., obs_dim]) -> Normal` over `[..., action_dim]` (independent dims).

    As in MAML-RL: a state-independent learned log-std, no tanh squashing (the environment
    clips). `min_std` keeps the distribution proper when the log-std is pushed down.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: type[nn.Module] = nn.ReLU,
        init_std: float = 1.0,
        min_std: float = 1e-6,
    ) -> None:
        super().__init__()
        _positive("obs_dim", obs_dim)
        _positive("action_dim", action_dim)
        if init_std <= 0:
            raise UsageError(f"init_std must be > 0, got {init_std}")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.min_log_std = math.log(min_std)
        self.net = mlp([obs_dim, *hidden_sizes, action_dim], activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_std)).log())

    def forward(self, obs: Tensor) -> Independent:
        mean = check_finite(self.net(obs), "policy mean")
        std = self.log_std.clamp(min=self.min_log_std).exp().expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)

    def per_task(self, params: Params, obs: Tensor) -> Independent:
        """Per-task parameters `[T, ...]` on obs `[T, ..., O]` (as `CategoricalMLPPolicy`)."""
        num_tasks, shape = obs.shape[0], obs.shape[1:-1]
        mean = _per_task_mlp(self.net, params, obs)
        log_std = params["log_std"].clamp(min=self.min_log_std)  # [T, A]
        std = log_std.exp().view(num_tasks, *([1] * len(shape)), -1).expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


class ValueMLP(nn.Module):
    """A learned state-value function: `forward(obs [..., obs_dim]) -> [...]`."""

    def __init__(
        self,
        obs_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        _positive("obs_dim", obs_dim)
        self.net = mlp([obs_dim, *hidden_sizes, 1], activation)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


def _space_dims(space: gym.Space) -> tuple[bool, int]:
    """(is_discrete, action width): number of actions, or the Box's flat size."""
    if isinstance(space, gym.spaces.Discrete):
        return True, int(space.n)
    if isinstance(space, gym.spaces.Box):
        return False, int(torch.tensor(space.shape).prod())
    raise UsageError(f"unsupported action space {space}; use Discrete or Box")


def check_head(head: str, action_space: gym.Space) -> Head:
    """Validate a policy head against an action space; `"auto"` picks the matching head."""
    discrete, _ = _space_dims(action_space)
    if head == "auto":
        return "categorical" if discrete else "gaussian"
    if head == "gaussian" and discrete:
        raise UsageError(
            f"a Gaussian policy needs a Box action space, got {action_space}; "
            "use head 'categorical'"
        )
    if head == "categorical" and not discrete:
        raise UsageError(
            f"a categorical policy needs a Discrete action space, got "
            f"{action_space}; use head 'gaussian'"
        )
    if head not in ("categorical", "gaussian"):
        raise UsageError(f"unknown policy head {head!r}; choose categorical, gaussian or auto")
    return head  # type: ignore[return-value]


def make_mlp_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    head: str = "auto",
    hidden_sizes: Sequence[int] = (100, 100),
    **kwargs,
) -> CategoricalMLPPolicy | GaussianMLPPolicy:
    """An MLP policy for flat Box observations and the given action space."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise UsageError(f"MLP policies need a Box observation space, got {observation_space}")
    obs_dim = int(torch.tensor(observation_space.shape).prod())
    head = check_head(head, action_space)
    _, width = _space_dims(action_space)
    if head == "categorical":
        return CategoricalMLPPolicy(obs_dim, width, hidden_sizes, **kwargs)
    return GaussianMLPPolicy(obs_dim, width, hidden_sizes, **kwargs)


class _ActionHead(nn.Module):
    """Distribution head shared by the recurrent policies: features `[..., F]` -> dist."""

    def __init__(self, features: int, head: Head, action_width: int, init_std: float) -> None:
        super().__init__()
        self.head = head
        self.out = nn.Linear(features, action_width)
        if head == "gaussian":
            self.log_std = nn.Parameter(torch.full((action_width,), float(init_std)).log())

    def forward(self, x: Tensor) -> Distribution:
        if self.head == "categorical":
            logits = check_finite(self.out(x), "policy logits")
            return Categorical(logits=logits, validate_args=False)  # checked: no sync per step
        mean = check_finite(self.out(x), "policy mean")
        std = self.log_std.exp().expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


class _RecurrentBase(nn.Module):
    """Input encoding shared by `RecurrentPolicy` and `MemoryPolicy`."""

    def __init__(self, obs_dim: int, action_width: int, head: Head) -> None:
        super().__init__()
        _positive("obs_dim", obs_dim)
        _positive("action_width", action_width)
        if head not in ("categorical", "gaussian"):
            raise UsageError(f"unknown policy head {head!r}; choose categorical or gaussian")
        if head == "categorical" and action_width < 2:
            raise UsageError(f"a categorical policy needs >= 2 actions, got {action_width}")
        self.obs_dim, self.action_width, self.head_kind = obs_dim, action_width, head
        self.input_size = obs_dim + action_width + 2

    def encode(
        self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, prev_done: Tensor
    ) -> Tensor:
        """`[..., obs_dim + action_width + 2]` from obs `[..., obs_dim]`, prev_action `[...]`
        (int, discrete; `< 0` = none) or `[..., action_dim]` (float), reward and done `[...]`."""
        if self.head_kind == "categorical":
            a = prev_action.long()
            onehot = F.one_hot(a.clamp(min=0), self.action_width).to(obs.dtype)
            act = onehot * (a >= 0).unsqueeze(-1).to(obs.dtype)
        else:
            act = prev_action.to(obs.dtype)
        return torch.cat(
            [
                obs,
                act,
                prev_reward.to(obs.dtype).unsqueeze(-1),
                prev_done.to(obs.dtype).unsqueeze(-1),
            ],
            dim=-1,
        )

    def step(
        self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, prev_done: Tensor, state: Any
    ) -> tuple[Distribution, Tensor, Any]:
        """One step on `[B, ...]` inputs: `(dist [B], value [B], next state)` (the sequence
        `forward` with a time axis of 1)."""
        dist, value, state = self(
            obs.unsqueeze(0),
            prev_action.unsqueeze(0),
            prev_reward.unsqueeze(0),
            prev_done.unsqueeze(0),
            state,
        )
        return _squeeze_dist(dist), value.squeeze(0), state


class RecurrentPolicy(_RecurrentBase):
    """RL²'s GRU policy with a value head.

    `forward(obs [T, B, obs_dim], prev_action [T, B(, A)], prev_reward [T, B],
    prev_done [T, B], hidden [B, H], reset [T, B] | None) -> (dist [T, B], value [T, B],
    hidden [B, H])`. `reset[t]` (bool) zeroes the hidden state of those rows *before* step t
    (a trial boundary). Without mid-sequence resets the whole sequence goes through one
    `nn.GRU` call; with them, step by step -- the same numbers either way. `step` is the
    one-step form with `[B, ...]` inputs.
    """

    def __init__(
        self,
        obs_dim: int,
        action_width: int,
        head: Head = "categorical",
        hidden_size: int = 256,
        init_std: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, action_width, head)
        _positive("hidden_size", hidden_size)
        self.hidden_size = hidden_size
        self.gru = nn.GRU(self.input_size, hidden_size)
        self.policy_head = _ActionHead(hidden_size, head, action_width, init_std)
        self.value_head = nn.Linear(hidden_size, 1)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Zero hidden state `[B, H]`."""
        p = self.value_head.weight
        return torch.zeros(batch_size, self.hidden_size, device=device or p.device, dtype=p.dtype)

    def reset(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """Zero rows of `hidden` `[B, H]` where `mask` `[B]` is true (out of place)."""
        return torch.where(mask.unsqueeze(-1), torch.zeros_like(hidden), hidden)

    def forward(
        self,
        obs: Tensor,
        prev_action: Tensor,
        prev_reward: Tensor,
        prev_done: Tensor,
        hidden: Tensor,
        reset: Tensor | None = None,
    ) -> tuple[Distribution, Tensor, Tensor]:
        x = self.encode(obs, prev_action, prev_reward, prev_done)  # [T, B, in]
        if reset is not None:
            hidden = self.reset(hidden, reset[0])
        if reset is None or not reset[1:].any():
            feats, h = self.gru(x, hidden.unsqueeze(0))
            hidden = h.squeeze(0)
        else:
            outs = []
            for t in range(x.shape[0]):
                if t > 0:
                    hidden = self.reset(hidden, reset[t])
                out, h = self.gru(x[t : t + 1], hidden.unsqueeze(0))
                hidden = h.squeeze(0)
                outs.append(out)
            feats = torch.cat(outs)
        return self.policy_head(feats), self.value_head(feats).squeeze(-1), hidden


class MemoryPolicy(_RecurrentBase):
    """`RecurrentPolicy`'s interface with a `metarl.memory.MemoryCore` as the recurrent core.

    The state is a `MemoryState` (controller, memory `[B, slots, width]`, usage, reads).
    """

    def __init__(
        self,
        obs_dim: int,
        action_width: int,
        head: Head = "categorical",
        hidden_size: int = 128,
        slots: int = 64,
        width: int = 32,
        heads: int = 1,
        controller: Literal["lstm", "gru"] = "lstm",
        gamma: float = 0.95,
        init_std: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, action_width, head)
        self.core = MemoryCore(self.input_size, hidden_size, slots, width, heads, controller, gamma)
        self.policy_head = _ActionHead(self.core.output_size, head, action_width, init_std)
        self.value_head = nn.Linear(self.core.output_size, 1)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> MemoryState:
        return self.core.initial_state(batch_size, device)

    def reset(self, state: MemoryState, mask: Tensor) -> MemoryState:
        return self.core.reset(state, mask)

    def forward(
        self,
        obs: Tensor,
        prev_action: Tensor,
        prev_reward: Tensor,
        prev_done: Tensor,
        state: MemoryState,
        reset: Tensor | None = None,
    ) -> tuple[Distribution, Tensor, MemoryState]:
        x = self.encode(obs, prev_action, prev_reward, prev_done)  # [T, B, in]
        outs = []
        for t in range(x.shape[0]):
            if reset is not None:
                state = self.core.reset(state, reset[t])
            out, state = self.core(x[t], state)
            outs.append(out)
        feats = torch.stack(outs)
        return self.policy_head(feats), self.value_head(feats).squeeze(-1), state


def _squeeze_dist(dist: Distribution) -> Distribution:
    """Drop the leading time axis of length 1 from a policy-head distribution."""
    if isinstance(dist, Categorical):
        # The head validated these parameters already: skip a second check (rollout hot path).
        return Categorical(logits=dist.logits.squeeze(0), validate_args=False)
    assert isinstance(dist, Independent) and isinstance(dist.base_dist, Normal)
    base = dist.base_dist
    normal = Normal(base.loc.squeeze(0), base.scale.squeeze(0), validate_args=False)
    return Independent(normal, 1, validate_args=False)


def make_recurrent_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    kind: Literal["gru", "memory"] = "gru",
    head: str = "auto",
    **kwargs,
) -> RecurrentPolicy | MemoryPolicy:
    """A recurrent policy (RL² GRU or memory-augmented) for the given spaces."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise UsageError(
            f"recurrent policies need a Box observation space, got {observation_space}"
        )
    obs_dim = int(torch.tensor(observation_space.shape).prod())
    head = check_head(head, action_space)
    _, width = _space_dims(action_space)
    if kind == "gru":
        return RecurrentPolicy(obs_dim, width, head, **kwargs)
    if kind == "memory":
        return MemoryPolicy(obs_dim, width, head, **kwargs)
    raise UsageError(f"unknown recurrent policy kind {kind!r}; choose gru or memory")
