"""The CPU paths of the tensor envs (`TensorVectorEnv._host_reads_are_free`) give the numbers
of the accelerator paths bit for bit: step noise read from a block drawn for several counters
(`_block_uniform`), reset noise drawn only for the copies being reset, and no reset work on a
step where no copy is done."""

from __future__ import annotations

import pytest
import torch

from envs.tensor import FAMILIES, BanditVectorEnv, TabularMDPVectorEnv
from envs.tensor.base import NOISE_BLOCK_STEPS, uniform


class _AcceleratorPaths:
    def _host_reads_are_free(self) -> bool:  # the accelerator paths, on the CPU
        return False


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


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_and_accelerator_paths_give_the_same_episodes(family):
    accel_cls = type(f"Accel{family.__name__}", (_AcceleratorPaths, family), {})
    cpu, accel = family(num_envs=64, horizon=7), accel_cls(num_envs=64, horizon=7)
    assert torch.equal(cpu.reset(seed=3)[0], accel.reset(seed=3)[0])
    cpu.action_space.seed(1)
    quiet_steps = 0
    for step in range(3 * NOISE_BLOCK_STEPS):
        a = torch.as_tensor(cpu.action_space.sample())
        (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) = cpu.step(a), accel.step(a)
        for x, y in (
            (o1, o2),
            (r1, r2),
            (te1, te2),
            (tr1, tr2),
            (i1["final_obs"], i2["final_obs"]),
        ):
            assert torch.equal(x, y)
        assert torch.equal(i1["_final_obs"], i2["_final_obs"])
        assert o1.data_ptr() != i1["final_obs"].data_ptr()  # two tensors, as after a reset
        quiet_steps += not bool((te1 | tr1).any())
        if step == NOISE_BLOCK_STEPS + 3:  # a reseed in the middle of a block
            assert torch.equal(cpu.reset(seed=4)[0], accel.reset(seed=4)[0])
    assert quiet_steps > 0  # the no-reset path ran (horizon 7: most steps end no episode)
    assert not accel._noise_blocks
    if family in (BanditVectorEnv, TabularMDPVectorEnv):  # the families with step noise
        assert cpu._noise_blocks
