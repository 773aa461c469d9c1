"""The CPU envs read their step noise from a block drawn for several counters at once
(`TensorVectorEnv._block_uniform`): the numbers are those of a draw at each copy's counter,
bit for bit, however the copies' counters drift apart, jump or restart."""

from __future__ import annotations

import pytest
import torch

from envs.tensor import BanditVectorEnv, TabularMDPVectorEnv
from envs.tensor.base import NOISE_BLOCK_STEPS, uniform


class _NoBlock:
    def _noise_block_steps(self) -> int:  # the accelerator path, on the CPU
        return 1


@pytest.mark.parametrize(
    ("num", "dtype"), [(1, torch.float32), (3, torch.float32), (2, torch.float64)]
)
def test_block_draws_equal_draws_at_each_counter(num, dtype):
    env = BanditVectorEnv(num_envs=33)
    env.reset(seed=5)
    assert env._key_hash is not None
    g = torch.Generator().manual_seed(0)
    blocks_drawn = 0
    for step in range(120):
        # counters drift apart (a copy that resets advances one more), jump past the block,
        # and restart from 0 (a reseed zeroes them: the old block must not be read)
        env._counter += torch.randint(0, 3, (33,), generator=g)
        if step == 40:
            env._counter[7] += 5 * NOISE_BLOCK_STEPS
        if step == 80:
            env.reset(seed=9)
        before = env._noise_blocks.get((0, num, dtype))
        got = env._uniform(0, num, dtype)
        blocks_drawn += env._noise_blocks[(0, num, dtype)] is not before
        assert torch.equal(got, uniform(env._key_hash, env._counter, 0, num, dtype))
    # the cache was used: far fewer blocks than draws, but more than one
    assert 2 < blocks_drawn < 120 // 2


@pytest.mark.parametrize("family", [BanditVectorEnv, TabularMDPVectorEnv])
def test_block_and_per_step_noise_give_the_same_episodes(family):
    plain_cls = type(f"NoBlock{family.__name__}", (_NoBlock, family), {})
    blocked, plain = family(num_envs=64, horizon=7), plain_cls(num_envs=64, horizon=7)
    for env in (blocked, plain):
        env.reset(seed=3)
    g = torch.Generator().manual_seed(1)
    n = blocked.single_action_space.n
    for step in range(3 * NOISE_BLOCK_STEPS):
        a = torch.randint(0, int(n), (64,), generator=g)
        for x, y in zip(blocked.step(a)[:4], plain.step(a)[:4], strict=True):
            assert torch.equal(x, y)
        if step == NOISE_BLOCK_STEPS + 3:  # a reseed in the middle of a block
            assert torch.equal(blocked.reset(seed=4)[0], plain.reset(seed=4)[0])
    assert blocked._noise_blocks and not plain._noise_blocks
