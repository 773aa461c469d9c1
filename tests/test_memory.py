import pytest
import torch
from torch.func import functional_call

from metarl.errors import UsageError
from metarl.memory import (
    MemoryCore,
    MemoryState,
    content_weights,
    least_used_weights,
    lru_write,
    read_memory,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_read_weights_sum_to_one_and_are_sharpened_by_strength():
    g = _gen()
    memory = torch.randn(3, 7, 5, generator=g)
    keys = torch.randn(3, 2, 5, generator=g)
    w1 = content_weights(memory, keys, torch.ones(3, 2))
    w10 = content_weights(memory, keys, torch.full((3, 2), 10.0))
    assert w1.shape == (3, 2, 7)
    torch.testing.assert_close(w1.sum(-1), torch.ones(3, 2))
    assert (w1 >= 0).all()
    # higher strength puts more mass on the best-matching slot
    assert (w10.amax(-1) > w1.amax(-1)).all()
    # cosine, not dot product: scaling a slot does not change its weight
    torch.testing.assert_close(content_weights(memory * 3.0, keys, torch.ones(3, 2)), w1)


def test_written_keys_are_read_back():
    g = _gen(1)
    b, n, w, k = 2, 8, 32, 5
    memory = torch.full((b, n, w), 1e-6)
    usage = torch.zeros(b, n)
    read_w = torch.zeros(b, 1, n)
    keys = torch.randn(k, b, 1, w, generator=g)
    never_gate = torch.full((b, 1), -30.0)  # sigmoid ~ 0: write to the least-used slot
    for i in range(k):
        memory, write_w = lru_write(memory, usage, read_w, keys[i], never_gate)
        usage = 0.95 * usage + write_w.sum(1)
    for i in range(k):
        weights = content_weights(memory, keys[i], torch.full((b, 1), 100.0))
        torch.testing.assert_close(read_memory(memory, weights), keys[i], atol=1e-3, rtol=1e-3)
    # five distinct slots were used
    assert ((memory.abs().sum(-1) > 1e-3).sum(-1) == k).all()


def test_lru_write_goes_to_least_used_slot():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.0, 0.2, 0.2, 0.1]])
    lu = least_used_weights(usage, 2)
    assert lu.argmax(-1).tolist() == [[1, 3], [0, 3]]
    memory = torch.ones(2, 4, 3)
    key = torch.tensor([[[7.0, 8.0, 9.0]], [[1.0, 2.0, 3.0]]])
    prev_read = torch.full((2, 1, 4), 0.25)
    new, write_w = lru_write(memory, usage, prev_read, key, torch.full((2, 1), -50.0))
    torch.testing.assert_close(write_w[:, 0], least_used_weights(usage, 1)[:, 0])
    # the least-used slot is cleared then holds exactly the key; other slots untouched
    torch.testing.assert_close(new[0, 1], key[0, 0])
    torch.testing.assert_close(new[1, 0], key[1, 0])
    torch.testing.assert_close(new[0, [0, 2, 3]], torch.ones(3, 3))
    # gate fully open: the write goes where the previous read went
    _, write_open = lru_write(memory, usage, prev_read, key, torch.full((2, 1), 50.0))
    torch.testing.assert_close(write_open, prev_read)


@pytest.mark.parametrize("controller", ["lstm", "gru"])
def test_core_reset_only_masked_rows_and_gradients_flow(controller):
    torch.manual_seed(0)  # module init only; data below uses an explicit generator
    core = MemoryCore(6, hidden_size=16, slots=10, width=8, heads=2, controller=controller)
    g = _gen(2)
    state = core.initial_state(4)
    xs = torch.randn(5, 4, 6, generator=g)
    outs = []
    for x in xs:
        out, state = core(x, state)
        outs.append(out)
    assert outs[0].shape == (4, core.output_size)
    fresh = core.initial_state(4)
    mask = torch.tensor([True, False, True, False])
    reset = core.reset(state, mask)
    for r, s, f in zip(reset, state, fresh, strict=True):
        torch.testing.assert_close(r[mask], f[mask])
        torch.testing.assert_close(r[~mask], s[~mask])
    assert not torch.equal(state.memory[~mask], fresh.memory[~mask])
    # after a reset the masked rows behave like a fresh start on the same input
    out_reset, _ = core(xs[0], reset)
    torch.testing.assert_close(out_reset[mask], outs[0][mask])
    # gradients reach every parameter through the memory, and through functional_call
    params = {k: v.detach().clone().requires_grad_(True) for k, v in core.named_parameters()}
    st = core.initial_state(4)
    total = 0.0
    for x in xs:
        out, st = functional_call(core, params, (x, st))
        total = total + out.pow(2).sum()
    grads = torch.autograd.grad(total, list(params.values()))
    for name, gr in zip(params, grads, strict=True):
        assert torch.isfinite(gr).all() and gr.abs().sum() > 0, name


def test_state_is_a_pytree_and_usage_decays():
    core = MemoryCore(3, hidden_size=4, slots=5, width=2, heads=1, gamma=0.5)
    state = core.initial_state(2)
    assert isinstance(state, tuple) and isinstance(state, MemoryState)
    _, s1 = core(torch.zeros(2, 3), state)
    _, s2 = core(torch.zeros(2, 3), s1)
    # once there is a previous read, a step adds one read and one write of mass 1 each
    torch.testing.assert_close(s2.usage.sum(-1), 0.5 * s1.usage.sum(-1) + 2.0)


def test_bad_configuration_is_a_usage_error():
    with pytest.raises(UsageError):
        MemoryCore(3, slots=2, heads=4)
    with pytest.raises(UsageError):
        MemoryCore(3, controller="rnn")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        MemoryCore(0)
