"""Gridworld game variants: small games whose rules and layout are the task, seen through a
partial egocentric view, so an agent must explore to find out which game it is in.

Variant space (16 discrete variants, `variant = 4 * layout + 2 * key_door + payoff`):
- `layout` (4): 0 `open` (no inner walls); 1 `two_rooms` (a wall down column 4 with one gap);
  2 `three_bands` (walls along rows 3 and 5, one gap each); 3 `four_rooms` (walls along row 4
  and column 4, one gap in each of the four wall segments). Gap positions are random per task.
- `payoff` (2): two objects, A and B, look the same in every task; with payoff 0 object A pays
  +1 and B costs -1, with payoff 1 the reverse. Objects disappear when collected.
- `key_door` (2): with 0 the goal is open; with 1 the goal is locked (shown as a door) and can
  only be entered while holding the key, which lies elsewhere in the grid.
Within a variant, the agent's start, the goal, both objects and the key are placed at random on
distinct free cells (never in a wall gap, so the grid stays connected), per task.

Splits (a Latin square over layout x rule, where `rule = 2 * key_door + payoff`):
`test` = variants with `(layout + rule) % 4 == 0`, `val` = `(layout + rule) % 4 == 1`,
`train` = the other 8. Every layout and every rule appears in training, but the test
combinations (e.g. four_rooms with an open goal where A pays) never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from envs.tensor.base import (
    SingleEnvView,
    TensorVectorEnv,
    check_in_range,
    check_positive_float,
    check_positive_int,
    check_task_tensor,
)
from metarl.contracts import SPLITS
from metarl.errors import UsageError
from metarl.tasks import TaskBatch

EMPTY, WALL, GOAL, OBJ_A, OBJ_B, KEY, LOCKED = range(7)
CELL_NAMES = ("empty", "wall", "goal", "object_a", "object_b", "key", "locked_goal")
LAYOUTS = ("open", "two_rooms", "three_bands", "four_rooms")
SIZE = 9  # grid side including the border wall; the interior is 7 x 7
NUM_VARIANTS = 16
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left as (row, col)


def variant_split(variant: int) -> str:
    """The split a variant id (0..15) belongs to (see the module docstring)."""
    layout, rule = divmod(variant, 4)
    return {0: "test", 1: "val"}.get((layout + rule) % 4, "train")


SPLIT_VARIANTS: dict[str, tuple[int, ...]] = {
    s: tuple(v for v in range(NUM_VARIANTS) if variant_split(v) == s) for s in SPLITS
}


@dataclass(frozen=True)
class GridTask(TaskBatch):
    """A batch of games.

    `grid [T, 9, 9]` int64 cell codes (0 empty, 1 wall, 2 goal, 3 object A, 4 object B, 5 key,
    6 locked goal) with a wall border; `start [T, 2]` int64 (row, col) on a non-wall cell;
    `object_values [T, 2]` float32, rewards of objects A and B, finite; `variant [T]` int64 in
    [0, 16) (for analysis; the dynamics read only the grid and values).
    """

    grid: torch.Tensor
    start: torch.Tensor
    object_values: torch.Tensor
    variant: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("GridTask.grid", self.grid, (None, SIZE, SIZE), floating=False)
        t = self.grid.shape[0]
        check_task_tensor("GridTask.start", self.start, (t, 2), floating=False)
        check_task_tensor("GridTask.object_values", self.object_values, (t, 2))
        check_task_tensor("GridTask.variant", self.variant, (t,), floating=False)
        check_in_range("GridTask.grid", self.grid, EMPTY, LOCKED)
        border = torch.cat(
            [self.grid[:, 0], self.grid[:, -1], self.grid[:, :, 0], self.grid[:, :, -1]], 1
        )
        if not bool((border == WALL).all()):
            raise UsageError(
                "GridTask.grid: the outer border (row/col 0 and 8) must be all walls (code 1)"
            )
        check_in_range("GridTask.start", self.start, 1, SIZE - 2)
        at = self.grid[torch.arange(t, device=self.grid.device), self.start[:, 0], self.start[:, 1]]
        if not bool((at != WALL).all()):
            raise UsageError("GridTask.start: each start cell must not be a wall")
        check_in_range("GridTask.object_values", self.object_values, -1e6, 1e6)
        check_in_range("GridTask.variant", self.variant, 0, NUM_VARIANTS - 1)


@dataclass(frozen=True)
class GridGameConfig:
    view_size: int = 5
    """Side of the egocentric view (odd, 3..9); cells outside the grid read as walls."""
    horizon: int = 50
    """Steps per episode."""
    goal_reward: float = 1.0
    """Reward for entering the goal (which ends the episode)."""

    def __post_init__(self) -> None:
        v = self.view_size
        if not isinstance(v, int) or isinstance(v, bool) or v not in (3, 5, 7, 9):
            raise UsageError(f"view_size: must be an odd integer in [3, 9], got {v!r}")
        check_positive_int("horizon", self.horizon)
        check_positive_float("goal_reward", self.goal_reward)


def _layout_walls(
    layout: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wall and gap masks `[T, 9, 9]` for layout ids `[T]`, gap positions drawn per task."""
    t, dev = layout.shape[0], layout.device
    r = torch.arange(SIZE, device=dev).view(1, SIZE, 1)
    c = torch.arange(SIZE, device=dev).view(1, 1, SIZE)
    inner = (r >= 1) & (r <= SIZE - 2) & (c >= 1) & (c <= SIZE - 2)
    g7 = 1 + torch.randint(0, 7, (t, 2), generator=generator, device=generator.device).to(dev)
    g3 = 1 + torch.randint(0, 3, (t, 4), generator=generator, device=generator.device).to(dev)
    g7, g3 = g7[:, :, None, None], g3[:, :, None, None]
    # two_rooms: column 4, gap at row g7[0].
    two = inner & (c == 4)
    two_gap = two & (r == g7[:, 0])
    # three_bands: rows 3 and 5, gaps at columns g7[0] and g7[1].
    bands = inner & ((r == 3) | (r == 5))
    bands_gap = (inner & (r == 3) & (c == g7[:, 0])) | (inner & (r == 5) & (c == g7[:, 1]))
    # four_rooms: row 4 and column 4; gaps in rows 1-3, 5-7 of the column and cols 1-3, 5-7 of the row.
    four = inner & ((r == 4) | (c == 4))
    four_gap = (
        ((c == 4) & ((r == g3[:, 0]) | (r == 4 + g3[:, 1])))
        | ((r == 4) & ((c == g3[:, 2]) | (c == 4 + g3[:, 3])))
    ) & inner
    lay = layout.view(t, 1, 1)
    inner_wall = torch.where(
        lay == 1, two, torch.where(lay == 2, bands, torch.where(lay == 3, four, False))
    )
    gaps = torch.where(
        lay == 1, two_gap, torch.where(lay == 2, bands_gap, torch.where(lay == 3, four_gap, False))
    )
    walls = (~inner | inner_wall) & ~gaps
    return walls, gaps


def make_grid_tasks(variant: torch.Tensor, generator: torch.Generator) -> GridTask:
    """Random games of the given variant ids `[T]` (on the generator's device)."""
    t, dev = variant.shape[0], generator.device
    variant = variant.to(dev)
    layout, key_door, payoff = variant // 4, (variant // 2) % 2, variant % 2
    walls, gaps = _layout_walls(layout, generator)
    # Five distinct free non-gap cells per task: start, goal, object A, object B, key.
    scores = torch.rand(t, SIZE * SIZE, generator=generator, device=dev)
    scores = scores.masked_fill((walls | gaps).view(t, -1), -1.0)
    cells = scores.topk(5, dim=1).indices  # [T, 5]
    grid = walls.to(torch.int64).view(t, -1)  # WALL == 1, EMPTY == 0
    rows = torch.arange(t, device=dev)
    grid[rows, cells[:, 1]] = torch.where(key_door == 1, LOCKED, GOAL)
    grid[rows, cells[:, 2]] = OBJ_A
    grid[rows, cells[:, 3]] = OBJ_B
    grid[rows, cells[:, 4]] = torch.where(key_door == 1, KEY, EMPTY)
    start = torch.stack([cells[:, 0] // SIZE, cells[:, 0] % SIZE], -1)
    a_value = torch.where(payoff == 0, 1.0, -1.0)
    return GridTask(
        grid=grid.view(t, SIZE, SIZE),
        start=start,
        object_values=torch.stack([a_value, -a_value], -1),
        variant=variant,
    )


class GridGameVectorEnv(TensorVectorEnv[GridGameConfig, GridTask]):
    """Batched gridworld games: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: egocentric `V x V` view (V = `view_size`, default 5) centred on the agent,
      `Box(0, 1, (7, V, V), float32)`: channels 0-5 one-hot wall, goal, object A, object B, key,
      locked goal (cells outside the grid read as wall); channel 6 is all ones while the agent
      holds the key. Batched `[N, 7, V, V]`.
    - Action: `Discrete(4)`: up, right, down, left; integers outside [0, 4) are rejected.
      Moving into a wall, or into the locked goal without the key, leaves the agent in place.
    - Reward: `object_values[0]` / `[1]` on collecting object A / B (then removed),
      `goal_reward` (1) on entering the goal; 0 otherwise. Collecting the key gives 0.
    - Task: `GridTask` (the variant space and splits are in the module docstring).
    - Episode: starts at the task's start cell with the task's grid (objects and key restored);
      `terminated=True` on entering the goal; `truncated=True` after `horizon` steps (50).
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    config_type = GridGameConfig
    task_type = GridTask

    @classmethod
    def spaces(cls, config: GridGameConfig) -> tuple[spaces.Space, spaces.Space]:
        v = config.view_size
        return spaces.Box(0.0, 1.0, (7, v, v), np.float32), spaces.Discrete(4)

    @classmethod
    def sample_tasks(
        cls, config: GridGameConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> GridTask:
        """`num_tasks` games drawn uniformly from the split's variants, then placed at
        random (the splits hold disjoint variant sets); on the generator's device."""
        choices = torch.tensor(SPLIT_VARIANTS[split], device=generator.device)
        pick = torch.randint(
            0, len(choices), (num_tasks,), generator=generator, device=generator.device
        )
        return make_grid_tasks(choices[pick], generator)

    def _init_state(self) -> None:
        dev, v = self.device, self.config.view_size
        self.grid = self._zeros(SIZE, SIZE, dtype=torch.int64)  # [N, 9, 9]
        self.pos = torch.ones(self.num_envs, 2, dtype=torch.int64, device=dev)  # [N, 2] (row, col)
        self.has_key = self._zeros(dtype=torch.bool)
        self._rows = torch.arange(self.num_envs, device=dev)
        self._moves = torch.tensor(_MOVES, dtype=torch.int64, device=dev)
        self._window = torch.arange(v, device=dev)
        self._codes = torch.arange(WALL, LOCKED + 1, device=dev).view(1, -1, 1, 1)

    def _set_tasks(self, tasks: GridTask) -> None:
        self._task_grid = tasks.grid[self.task_id]  # [N, 9, 9]
        self._start = tasks.start[self.task_id]  # [N, 2]
        self._values = tasks.object_values.float()[self.task_id]  # [N, 2]

    def _obs(self) -> torch.Tensor:
        v = self.config.view_size
        half = v // 2
        padded = F.pad(self.grid, (half, half, half, half), value=WALL)  # [N, 9+2h, 9+2h]
        rows = self.pos[:, :1] + self._window  # [N, V] in padded coordinates
        cols = self.pos[:, 1:] + self._window
        view = padded[self._rows[:, None, None], rows[:, :, None], cols[:, None, :]]  # [N, V, V]
        planes = (view[:, None] == self._codes).float()  # [N, 6, V, V]
        key = self.has_key.float().view(-1, 1, 1, 1).expand(-1, 1, v, v)
        return torch.cat([planes, key], 1)

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self.grid = torch.where(mask[:, None, None], self._task_grid, self.grid)
        self.pos = torch.where(mask[:, None], self._start, self.pos)
        self.has_key = self.has_key & ~mask
        return self._obs()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = self.pos + self._moves[actions]  # stays inside: the border is all walls
        cell = self.grid[self._rows, target[:, 0], target[:, 1]]
        blocked = (cell == WALL) | ((cell == LOCKED) & ~self.has_key)
        self.pos = torch.where(blocked[:, None], self.pos, target)
        cell = torch.where(blocked, EMPTY, cell)
        reward = (
            (cell == OBJ_A) * self._values[:, 0]
            + (cell == OBJ_B) * self._values[:, 1]
            + ((cell == GOAL) | (cell == LOCKED)) * float(self.config.goal_reward)
        )
        self.has_key = self.has_key | (cell == KEY)
        consumed = (cell == OBJ_A) | (cell == OBJ_B) | (cell == KEY)
        here = self.grid[self._rows, self.pos[:, 0], self.pos[:, 1]]
        self.grid[self._rows, self.pos[:, 0], self.pos[:, 1]] = torch.where(consumed, EMPTY, here)
        terminated = (cell == GOAL) | (cell == LOCKED)
        return self._obs(), reward.float(), terminated


GridGameDistribution = GridGameVectorEnv.distribution


class GridGameEnv(SingleEnvView):
    """Single-env view of `GridGameVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = GridGameVectorEnv
