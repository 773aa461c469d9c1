"""The CPU reset path (noise drawn only for the copies being reset) gives the numbers of the
accelerator path (every row recomputed, old state kept where not done), bit for bit."""

from __future__ import annotations

import pytest
import torch

from envs.tensor import CartPoleVectorEnv, PendulumVectorEnv


class _DenseReset:
    def _reset_rows(self, mask: torch.Tensor) -> None:  # the accelerator path, on the CPU
        return None


@pytest.mark.parametrize("family", [CartPoleVectorEnv, PendulumVectorEnv])
def test_sparse_and_dense_resets_give_the_same_episodes(family):
    dense_cls = type(f"Dense{family.__name__}", (_DenseReset, family), {})
    sparse, dense = family(num_envs=64, horizon=15), dense_cls(num_envs=64, horizon=15)
    outs = [env.reset(seed=7)[0] for env in (sparse, dense)]
    assert torch.equal(*outs)
    sparse.action_space.seed(3)
    done_rows = 0
    for _ in range(60):
        a = torch.as_tensor(sparse.action_space.sample())
        (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) = sparse.step(a), dense.step(a)
        for x, y in (
            (o1, o2),
            (r1, r2),
            (te1, te2),
            (tr1, tr2),
            (i1["final_obs"], i2["final_obs"]),
        ):
            assert torch.equal(x, y)
        assert torch.equal(sparse.state, dense.state)
        done_rows += int((te1 | tr1).sum())
    assert done_rows > 64  # every copy was reset at least once (horizon 15, 60 steps)
