"""Plain numpy vectorised implementations of the tensor families' dynamics: the fastest CPU
peer for a family that has no Gymnasium native vector env (`scripts/bench_envs.py`).

Each is written as a careful numpy user would: state in preallocated arrays, per-copy task
parameters gathered once per task set, one `numpy.random.Generator` for every copy, same-step
autoreset and the family's time limit. They step the same dynamics as `envs/tensor/*` (same
observation, reward, termination and per-copy task parameters), not the same random numbers.
`step(actions)` takes a numpy array `[N, ...]` and returns `(obs, reward, terminated, truncated)`.
"""

from __future__ import annotations

import math

import numpy as np

from envs.tensor.gridworld import _MOVES, EMPTY, GOAL, KEY, LOCKED, OBJ_A, OBJ_B, WALL


class _Peer:
    def __init__(self, num_envs: int, horizon: int, seed: int = 0) -> None:
        self.n, self.horizon = num_envs, horizon
        self.rng = np.random.default_rng(seed)
        self.elapsed = np.zeros(num_envs, np.int64)

    def _time_limit(self, terminated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.elapsed += 1
        truncated = self.elapsed >= self.horizon
        done = terminated | truncated
        self.elapsed[done] = 0
        return truncated, done


class BanditPeer(_Peer):
    def __init__(self, num_envs: int, num_arms: int = 5, horizon: int = 100, seed: int = 0):
        super().__init__(num_envs, horizon, seed)
        self.probs = self.rng.random((num_envs, num_arms)).astype(np.float32)
        self.rows = np.arange(num_envs)
        self.obs = np.zeros((num_envs, 1), np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        reward = (self.rng.random(self.n, np.float32) < self.probs[self.rows, actions]).astype(
            np.float32
        )
        terminated = np.zeros(self.n, bool)
        truncated, _ = self._time_limit(terminated)
        return self.obs.copy(), reward, terminated, truncated


class TabularMDPPeer(_Peer):
    def __init__(
        self, num_envs: int, states: int = 10, actions: int = 5, horizon: int = 10, seed=0
    ):
        super().__init__(num_envs, horizon, seed)
        p = self.rng.dirichlet(np.ones(states), (num_envs, states, actions))
        self.cum = p.cumsum(-1).astype(np.float32)  # [N, S, A, S]
        self.means = (1.0 + self.rng.standard_normal((num_envs, states, actions))).astype(
            np.float32
        )
        self.state = np.zeros(num_envs, np.int64)
        self.rows, self.eye, self.s = np.arange(num_envs), np.eye(states, dtype=np.float32), states

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        u = self.rng.random(self.n, np.float32)
        cum = self.cum[self.rows, self.state, actions]  # [N, S]
        nxt = np.minimum((cum <= u[:, None]).sum(1), self.s - 1)
        reward = self.means[self.rows, self.state, actions] + self.rng.standard_normal(
            self.n, np.float32
        )
        self.state = nxt
        terminated = np.zeros(self.n, bool)
        truncated, done = self._time_limit(terminated)
        self.state[done] = 0
        return self.eye[self.state], reward, terminated, truncated


class Navigation2DPeer(_Peer):
    def __init__(self, num_envs: int, horizon: int = 100, radius: float = 0.01, seed: int = 0):
        super().__init__(num_envs, horizon, seed)
        self.goals = self.rng.uniform(-0.5, 0.5, (num_envs, 2)).astype(np.float32)
        self.pos = np.zeros((num_envs, 2), np.float32)
        self.radius = radius

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        self.pos += np.clip(actions, -0.1, 0.1)
        d = self.pos - self.goals
        dist = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        terminated = dist < self.radius
        truncated, done = self._time_limit(terminated)
        self.pos[done] = 0.0
        return self.pos.copy(), -dist, terminated, truncated


class PendulumPeer(_Peer):
    def __init__(self, num_envs: int, horizon: int = 200, seed: int = 0):
        super().__init__(num_envs, horizon, seed)
        scale = np.exp(self.rng.uniform(-math.log(2), math.log(2), (2, num_envs)))
        self.mass, self.length = 1.0 * scale[0], 1.0 * scale[1]
        self.th = self.rng.uniform(-math.pi, math.pi, num_envs)
        self.thdot = self.rng.uniform(-1.0, 1.0, num_envs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        u = np.clip(actions[:, 0], -2.0, 2.0).astype(np.float64)
        th, thdot = self.th, self.thdot
        th_norm = np.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = th_norm**2 + 0.1 * thdot**2 + 0.001 * u**2
        acc = 3 * 10.0 / (2 * self.length) * np.sin(th) + 3.0 / (self.mass * self.length**2) * u
        self.thdot = np.clip(thdot + acc * 0.05, -8.0, 8.0)
        self.th = th + self.thdot * 0.05
        terminated = np.zeros(self.n, bool)
        truncated, done = self._time_limit(terminated)
        k = int(done.sum())
        if k:
            self.th[done] = self.rng.uniform(-math.pi, math.pi, k)
            self.thdot[done] = self.rng.uniform(-1.0, 1.0, k)
        obs = np.stack([np.cos(self.th), np.sin(self.th), self.thdot], -1).astype(np.float32)
        return obs, (-costs).astype(np.float32), terminated, truncated


class GridGamePeer(_Peer):
    """Grids from the tensor family's own task sampler (numpy copies), numpy dynamics."""

    def __init__(self, num_envs: int, horizon: int = 50, view: int = 5, seed: int = 0):
        import torch

        from envs.tensor.gridworld import GridGameVectorEnv

        super().__init__(num_envs, horizon, seed)
        cfg = GridGameVectorEnv(num_envs=1).config
        g = torch.Generator().manual_seed(seed)
        tasks = GridGameVectorEnv.sample_tasks(cfg, "train", num_envs, g)
        self.task_grid = tasks.grid.numpy()
        self.start = tasks.start.numpy()
        self.values = tasks.object_values.numpy().astype(np.float32)
        self.grid, self.pos = self.task_grid.copy(), self.start.copy()
        self.has_key = np.zeros(num_envs, bool)
        self.rows, self.moves, self.half = np.arange(num_envs), np.array(_MOVES), view // 2
        self.window = np.arange(view)
        self.codes = np.arange(WALL, LOCKED + 1).reshape(1, -1, 1, 1)

    def _obs(self) -> np.ndarray:
        h = self.half
        padded = np.pad(self.grid, ((0, 0), (h, h), (h, h)), constant_values=WALL)
        r = self.pos[:, :1] + self.window
        c = self.pos[:, 1:] + self.window
        view = padded[self.rows[:, None, None], r[:, :, None], c[:, None, :]]
        planes = (view[:, None] == self.codes).astype(np.float32)
        key = np.broadcast_to(
            self.has_key.astype(np.float32)[:, None, None, None], (self.n, 1, *view.shape[1:])
        )
        return np.concatenate([planes, key], 1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        target = self.pos + self.moves[actions]
        cell = self.grid[self.rows, target[:, 0], target[:, 1]]
        blocked = (cell == WALL) | ((cell == LOCKED) & ~self.has_key)
        self.pos = np.where(blocked[:, None], self.pos, target)
        cell = np.where(blocked, EMPTY, cell)
        goal = (cell == GOAL) | (cell == LOCKED)
        reward = (cell == OBJ_A) * self.values[:, 0] + (cell == OBJ_B) * self.values[:, 1] + goal
        self.has_key |= cell == KEY
        consumed = (cell == OBJ_A) | (cell == OBJ_B) | (cell == KEY)
        self.grid[self.rows[consumed], self.pos[consumed, 0], self.pos[consumed, 1]] = EMPTY
        truncated, done = self._time_limit(goal)
        self.grid[done] = self.task_grid[done]
        self.pos[done] = self.start[done]
        self.has_key[done] = False
        return self._obs(), reward.astype(np.float32), goal, truncated


NUMPY_PEERS = {
    "metarl/Bandit-v0": BanditPeer,
    "metarl/TabularMDP-v0": TabularMDPPeer,
    "metarl/Navigation2D-v0": Navigation2DPeer,
    "metarl/GridGame-v0": GridGamePeer,
    "metarl/PendulumVariant-v0": PendulumPeer,
}
"""Gymnasium has a native vector env for CartPole only; every other family gets one of these."""
