"""Videos of a policy's behaviour, recorded through the shared sampler.

    clips = record_episodes(env, tasks, actor, num_episodes=n, episodes=[0, n - 1])
    video = side_by_side(clips)                       # [F, H, 2W, 3] uint8: before | after

`record_episodes` is `agents.rollout.rollout` with a frame taken from copy 0 before each of
its steps that falls in one of the wanted episodes, so a video shows exactly the behaviour
that the learner's evaluation measures (same env, same actor, same trial boundaries).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from agents.rollout import Actor, BatchedEnv, rollout
from metarl.contracts import TaskBatchLike
from metarl.errors import UsageError


def record_episodes(
    env: BatchedEnv,
    tasks: TaskBatchLike,
    actor: Actor,
    num_episodes: int,
    episodes: Sequence[int],
    every: int = 2,
    width: int = 160,
    height: int = 120,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Frames of copy 0 during each of `episodes` (indices inside one trial of
    `num_episodes`), one frame every `every` env steps: a list of `[F_e, H, W, 3]` uint8."""
    if not episodes or any(not 0 <= e < num_episodes for e in episodes):
        raise UsageError(f"episodes to record must lie in [0, {num_episodes}); got {episodes}")
    if every < 1:
        raise UsageError(f"every must be >= 1 env steps, got {every}")
    frames: dict[int, list[np.ndarray]] = {e: [] for e in episodes}

    def grab(ep: Tensor, t: Tensor) -> None:
        e, step = int(ep[0]), int(t[0])
        if e in frames and step % every == 0:
            frames[e].append(env.render(0, width, height))

    rollout(env, tasks, actor, num_episodes, seed=seed, on_step=grab)
    return [
        np.stack(frames[e]) if frames[e] else np.zeros((0, height, width, 3), np.uint8)
        for e in episodes
    ]


def side_by_side(clips: Sequence[np.ndarray]) -> np.ndarray:
    """Clips `[F_i, H, W_i, 3]` placed left to right: `[max F_i, H, sum W_i, 3]`; a clip that
    ends early (an Ant that fell) holds its last frame (black if it has none)."""
    if not clips:
        raise UsageError("side_by_side needs at least one clip")
    n = max(len(c) for c in clips)
    h = clips[0].shape[1]
    padded = []
    for c in clips:
        if len(c) == 0:
            c = np.zeros((1, h, c.shape[2], 3), np.uint8)
        padded.append(np.concatenate([c, np.repeat(c[-1:], n - len(c), axis=0)]))
    return np.concatenate(padded, axis=2)
