import pytest
import torch

from agents.advantages import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_feature_baseline,
    normalize,
)
from metarl.errors import NonFiniteError, UsageError


def _data(seed=0, shape=(3, 4, 9)):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(*shape, generator=g, dtype=torch.float64)
    v = torch.randn(*shape, generator=g, dtype=torch.float64)
    d = (torch.rand(*shape, generator=g) < 0.25).double()
    last = torch.randn(*shape[:-1], generator=g, dtype=torch.float64)
    return r, v, d, last


def _closed_form_gae(r, v, d, last, gamma, lam):
    """A_t = sum_{l>=0} (gamma lam)^l delta_{t+l}, stopping after the first done (inclusive)."""
    h = r.shape[-1]
    v_next = torch.cat([v[..., 1:], last.unsqueeze(-1)], -1)
    delta = r + gamma * (1 - d) * v_next - v
    adv = torch.zeros_like(r)
    for t in range(h):
        alive = torch.ones_like(r[..., 0])
        for k in range(t, h):
            adv[..., t] += alive * (gamma * lam) ** (k - t) * delta[..., k]
            alive = alive * (1 - d[..., k])
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_equals_closed_form_with_dones(lam):
    r, v, d, last = _data()
    adv = gae(r, v, d, gamma=0.9, lam=lam, last_value=last)
    torch.testing.assert_close(adv, _closed_form_gae(r, v, d, last, 0.9, lam))


def test_gae_lambda_limits():
    r, v, d, last = _data(1)
    ret = discounted_returns(r, d, 0.9, last_value=last)
    torch.testing.assert_close(gae(r, v, d, 0.9, 1.0, last), ret - v)
    v_next = torch.cat([v[..., 1:], last.unsqueeze(-1)], -1)
    td = r + 0.9 * (1 - d) * v_next - v
    torch.testing.assert_close(gae(r, v, d, 0.9, 0.0, last), td)


def test_discounted_returns_hand_loop_and_time_dim():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    d = torch.tensor([0.0, 1.0, 0.0, 0.0])
    ret = discounted_returns(r, d, 0.5)
    torch.testing.assert_close(ret, torch.tensor([1 + 0.5 * 2, 2.0, 3 + 0.5 * 4, 4.0]))
    # a time-major layout gives the same numbers as the time-last one
    rr, vv, dd, last = _data(2)
    a = gae(rr, vv, dd, 0.9, 0.9, last)
    b = gae(rr.movedim(-1, 0), vv.movedim(-1, 0), dd.movedim(-1, 0), 0.9, 0.9, last, dim=0)
    torch.testing.assert_close(b.movedim(0, -1), a)


def test_normalize_with_and_without_mask():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, generator=g) * 3 + 2
    n = normalize(x)
    torch.testing.assert_close(n.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(n.std(unbiased=False), torch.tensor(1.0), atol=1e-5, rtol=0)
    per_task = normalize(x, dims=(1, 2))
    torch.testing.assert_close(per_task.mean(dim=(1, 2)), torch.zeros(2), atol=1e-6, rtol=0)
    mask = torch.ones_like(x)
    mask[..., 4:] = 0
    nm = normalize(x, mask, dims=(1, 2))
    torch.testing.assert_close(nm[..., :4], normalize(x[..., :4], dims=(1, 2)))
    assert (nm[..., 4:] == 0).all()


def test_linear_baseline_fits_a_linear_target_exactly():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(3, 8, 20, 2, generator=g, dtype=torch.float64)
    feats = baseline_features(obs)
    assert feats.shape == (3, 8, 20, 2 * 2 + 4)
    torch.testing.assert_close(
        feats[0, 0, 7, 4:], torch.tensor([0.07, 0.07**2, 0.07**3, 1.0], dtype=torch.float64)
    )
    w_true = torch.randn(3, 8, generator=g, dtype=torch.float64)
    target = torch.einsum("tehf,tf->teh", feats, w_true)
    values = linear_feature_baseline(obs, target, reg_coeff=1e-10)
    torch.testing.assert_close(values, target, atol=1e-6, rtol=1e-6)
    # default ridge 1e-5: still within a small tolerance
    torch.testing.assert_close(linear_feature_baseline(obs, target), target, atol=1e-2, rtol=0)
    # padding (mask 0) does not affect the fit
    mask = torch.ones_like(target)
    mask[:, :, 15:] = 0
    junk = target.clone()
    junk[:, :, 15:] = 1e3
    w = fit_linear_baseline(obs, junk, mask, reg_coeff=1e-10)
    fitted = torch.einsum("tehf,tf->teh", feats, w)
    torch.testing.assert_close(fitted[..., :15], target[..., :15], atol=1e-6, rtol=1e-6)
    assert (linear_feature_baseline(obs, junk, mask)[..., 15:] == 0).all()


def test_linear_baseline_increases_ridge_until_finite():
    # all-zero observations and a single step: X^T X is singular without the ridge
    obs = torch.zeros(2, 1, 1, 3)
    values = linear_feature_baseline(obs, torch.ones(2, 1, 1), reg_coeff=0.0)
    assert torch.isfinite(values).all()


def test_bad_input():
    r = torch.zeros(2, 3)
    with pytest.raises(UsageError):
        gae(r, r, r, gamma=1.5)
    with pytest.raises(UsageError):
        gae(r, r, r, lam=-0.1)
    with pytest.raises(UsageError):
        gae(r, torch.zeros(3, 2), r)


def test_value_normalizer_statistics_and_inverse():
    from agents.advantages import ValueNormalizer

    g = torch.Generator().manual_seed(0)
    x = 50 + 20 * torch.randn(4, 30, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 30, generator=g) > 0.3).double()
    vn = ValueNormalizer(beta=0.9)
    assert vn.normalize(x).equal(x)  # no statistics yet: identity
    vn.update(x, mask)
    valid = x[mask.bool()]
    assert vn.mean == pytest.approx(valid.mean().item(), rel=1e-12)  # debiased: exact at first
    assert vn.std == pytest.approx(valid.std(unbiased=False).item(), rel=1e-6)
    z = vn.normalize(x)[mask.bool()]
    assert z.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert z.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(vn.denormalize(vn.normalize(x)), x)
    y = x + 100
    vn.update(y)  # second batch: EMA of the means, 0.9 on the past, debiased by 1 - 0.81
    want = (0.9 * 0.1 * valid.mean().item() + 0.1 * y.mean().item()) / 0.19
    assert vn.mean == pytest.approx(want, rel=1e-12)
    restored = ValueNormalizer(beta=0.9)
    restored.load_state_dict(vn.state_dict())
    assert (restored.mean, restored.std) == (vn.mean, vn.std)
    with pytest.raises(NonFiniteError):
        vn.update(torch.tensor([float("nan")]))
