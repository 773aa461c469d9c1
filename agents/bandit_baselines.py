"""Classic baselines for the bandit and tabular-MDP task families, vectorised over tasks.

Every function takes the true task parameters for `B` tasks, a budget and a
`torch.Generator`, plays the strategy against freshly drawn rewards, and returns the total
reward per task `[B]`: the numbers RL² and the memory policy are compared with (Duan et al.
2016, tables 1-2). Same generator seed, same numbers.

Bandits: Bernoulli arms with probabilities `[B, k]`, `horizon` pulls: random, UCB1,
Thompson sampling, epsilon-greedy, greedy and the Gittins index. Greedy estimates use the
Beta(1, 1) prior: posterior mean `(1 + successes) / (2 + pulls)`. Ties are broken uniformly
at random.

Tabular MDPs: transitions `[B, S, A, S]`, reward means `[B, S, A]`, rewards N(mean, 1),
`num_episodes` episodes of `episode_length` steps, each starting from `initial_dist`
(`[S]` or `[B, S]`; state 0 if omitted). Priors (PSRL and greedy): transitions
Dirichlet(`transition_prior` = 1) per (s, a); mean rewards N(`reward_prior_mean`,
`reward_prior_std`^2) per (s, a), defaults 1 and 1 as in the RL² task distribution, with
known noise variance 1, so the posterior is Normal in closed form. Plans are finite-horizon
backward induction over the steps left in the episode.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from metarl.errors import UsageError

# ---------------------------------------------------------------------------------------------
# random variates from an explicit generator (torch's Gamma / Beta / Dirichlet take none)


def sample_gamma(concentration: Tensor, generator: torch.Generator) -> Tensor:
    """Gamma(concentration, 1) draws, same shape, by Marsaglia-Tsang (2000) rejection.

    Rejected proposals (about 1 in 20) are redrawn until all are accepted; the draws depend
    only on the generator state and the input. For concentration < 1: Gamma(a+1) * U^(1/a).
    """
    if (concentration <= 0).any():
        raise UsageError("gamma concentration must be > 0")
    kw: dict[str, Any] = {
        "generator": generator,
        "device": concentration.device,
        "dtype": concentration.dtype,
    }
    alpha = concentration.reshape(-1)
    a = torch.where(alpha < 1, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(a)
    todo = torch.arange(a.numel(), device=a.device)
    while todo.numel() > 0:
        dt, ct = d[todo], c[todo]
        x = torch.randn(todo.shape, **kw)
        u = torch.rand(todo.shape, **kw)
        v = (1 + ct * x) ** 3
        ok = (v > 0) & (u.log() < 0.5 * x * x + dt - dt * v + dt * v.clamp(min=1e-30).log())
        out[todo[ok]] = (dt * v)[ok]
        todo = todo[~ok]
    boost = alpha < 1
    if bool(boost.any()):
        u = torch.rand(a.shape, **kw)
        out = torch.where(boost, out * u.pow(1.0 / alpha), out)
    return out.view_as(concentration)


def sample_beta(a: Tensor, b: Tensor, generator: torch.Generator) -> Tensor:
    """Beta(a, b) draws `[...]` as Ga / (Ga + Gb)."""
    ga, gb = sample_gamma(torch.stack(torch.broadcast_tensors(a, b)), generator)
    return ga / (ga + gb)


def sample_dirichlet(alpha: Tensor, generator: torch.Generator) -> Tensor:
    """Dirichlet(alpha) draws over the last axis `[..., K]`."""
    g = sample_gamma(alpha, generator)
    return g / g.sum(-1, keepdim=True)


def _argmax_random_ties(scores: Tensor, generator: torch.Generator) -> Tensor:
    """argmax over the last axis `[B, k] -> [B]`, ties broken uniformly at random."""
    best = scores == scores.amax(-1, keepdim=True)
    noise = torch.rand(scores.shape, generator=generator, device=scores.device)
    return torch.where(best, noise, -1.0).argmax(-1)


# ---------------------------------------------------------------------------------------------
# Bernoulli bandits


def _check_bandit(probs: Tensor, horizon: int) -> None:
    if probs.dim() != 2 or probs.shape[1] < 2:
        raise UsageError(f"arm probabilities must be [B, k] with k >= 2, got {tuple(probs.shape)}")
    if horizon < 1:
        raise UsageError(f"bandit horizon must be >= 1, got {horizon}")
    if ((probs < 0) | (probs > 1)).any():
        raise UsageError("arm probabilities must lie in [0, 1]")


BanditChoice = Callable[[int, Tensor, Tensor, torch.Generator], Tensor]


def _play_bandit(
    probs: Tensor, horizon: int, generator: torch.Generator, choose: BanditChoice
) -> Tensor:
    """Run `choose(t, pulls [B, k], successes [B, k], gen) -> arm [B]` for `horizon` steps."""
    _check_bandit(probs, horizon)
    b, k = probs.shape
    pulls = torch.zeros(b, k, device=probs.device)
    wins = torch.zeros(b, k, device=probs.device)
    total = torch.zeros(b, device=probs.device)
    rows = torch.arange(b, device=probs.device)
    for t in range(horizon):
        arm = choose(t, pulls, wins, generator)
        u = torch.rand(b, generator=generator, device=probs.device)
        reward = (u < probs[rows, arm]).to(total.dtype)
        pulls = pulls.index_put((rows, arm), torch.ones_like(reward), accumulate=True)
        wins = wins.index_put((rows, arm), reward, accumulate=True)
        total = total + reward
    return total


def random_bandit(probs: Tensor, horizon: int, generator: torch.Generator) -> Tensor:
    """Uniformly random arms: the floor every learner must beat. Total reward `[B]`."""

    def choose(t, pulls, wins, g):
        return torch.randint(0, pulls.shape[1], (pulls.shape[0],), generator=g, device=pulls.device)

    return _play_bandit(probs, horizon, generator, choose)


def ucb1(probs: Tensor, horizon: int, generator: torch.Generator, c: float = 1.0) -> Tensor:
    """UCB1 (Auer et al. 2002): each arm once, then argmax `mean + c * sqrt(2 ln t / n_i)`.

    c = 1 is the textbook algorithm; Duan et al. (2016) tuned c for their table, and smaller
    c (less exploration) scores higher on short horizons.
    """
    if c < 0:
        raise UsageError(f"UCB1 exploration coefficient c must be >= 0, got {c}")

    def choose(t, pulls, wins, g):
        bonus = c * torch.sqrt(2.0 * math.log(max(t, 1)) / pulls.clamp(min=1))
        score = wins / pulls.clamp(min=1) + bonus
        score = torch.where(pulls == 0, torch.inf, score)  # untried arms first
        return _argmax_random_ties(score, g)

    return _play_bandit(probs, horizon, generator, choose)


def thompson_sampling(probs: Tensor, horizon: int, generator: torch.Generator) -> Tensor:
    """Thompson sampling with a Beta(1, 1) prior per arm (Thompson 1933)."""

    def choose(t, pulls, wins, g):
        theta = sample_beta(1.0 + wins, 1.0 + pulls - wins, g)
        return theta.argmax(-1)

    return _play_bandit(probs, horizon, generator, choose)


def epsilon_greedy(
    probs: Tensor, horizon: int, generator: torch.Generator, epsilon: float = 0.1
) -> Tensor:
    """With probability epsilon a uniformly random arm, else the best posterior mean."""
    if not 0.0 <= epsilon <= 1.0:
        raise UsageError(f"epsilon must be in [0, 1], got {epsilon}")

    def choose(t, pulls, wins, g):
        b, k = pulls.shape
        greedy_arm = _argmax_random_ties((1.0 + wins) / (2.0 + pulls), g)
        explore = torch.rand(b, generator=g, device=pulls.device) < epsilon
        random_arm = torch.randint(0, k, (b,), generator=g, device=pulls.device)
        return torch.where(explore, random_arm, greedy_arm)

    return _play_bandit(probs, horizon, generator, choose)


def greedy(probs: Tensor, horizon: int, generator: torch.Generator) -> Tensor:
    """Always the best posterior mean (epsilon-greedy with epsilon = 0)."""
    return epsilon_greedy(probs, horizon, generator, epsilon=0.0)


# ---------------------------------------------------------------------------------------------
# tabular MDPs


def _check_mdp(
    transitions: Tensor, reward_means: Tensor, num_episodes: int, episode_length: int
) -> None:
    if transitions.dim() != 4 or transitions.shape[1] != transitions.shape[3]:
        raise UsageError(f"transitions must be [B, S, A, S], got {tuple(transitions.shape)}")
    if reward_means.shape != transitions.shape[:3]:
        raise UsageError(
            f"reward means must be [B, S, A] = {tuple(transitions.shape[:3])}, "
            f"got {tuple(reward_means.shape)}"
        )
    if num_episodes < 1 or episode_length < 1:
        raise UsageError(
            f"need num_episodes >= 1 and episode_length >= 1, got "
            f"{num_episodes} and {episode_length}"
        )


def plan(transitions: Tensor, rewards: Tensor, steps: int) -> Tensor:
    """Finite-horizon backward induction: Q `[steps, B, S, A]`, Q[h] with `steps - h` left.

    transitions `[B, S, A, S]`, rewards `[B, S, A]` (expected reward of (s, a)).
    """
    q = []
    v = torch.zeros(rewards.shape[:2], dtype=rewards.dtype, device=rewards.device)
    for _ in range(steps):
        qh = rewards + torch.einsum("bsan,bn->bsa", transitions, v)
        q.append(qh)
        v = qh.amax(-1)
    return torch.stack(q[::-1])


MDPPlanner = Callable[[Tensor, Tensor, Tensor, torch.Generator], Tensor]


def _play_mdp(
    transitions: Tensor,
    reward_means: Tensor,
    num_episodes: int,
    episode_length: int,
    generator: torch.Generator,
    initial_dist: Tensor | None,
    make_q: MDPPlanner,
) -> Tensor:
    """Run `make_q(counts [B,S,A,S], reward_sum, visits [B,S,A], g) -> Q [L, B, S, A]`, replanned
    at the start of every episode, greedily with random tie-breaking."""
    _check_mdp(transitions, reward_means, num_episodes, episode_length)
    b, s, a, _ = transitions.shape
    dev, dt = transitions.device, reward_means.dtype
    rows = torch.arange(b, device=dev)
    counts = torch.zeros(b, s, a, s, device=dev, dtype=dt)
    reward_sum = torch.zeros(b, s, a, device=dev, dtype=dt)
    visits = torch.zeros(b, s, a, device=dev, dtype=dt)
    total = torch.zeros(b, device=dev, dtype=dt)
    if initial_dist is not None:
        start = initial_dist.to(dev, dt).expand(b, s)
    cdf = transitions.cumsum(-1)
    for _ in range(num_episodes):
        q = make_q(counts, reward_sum, visits, generator)  # [L, B, S, A]
        if initial_dist is None:
            state = torch.zeros(b, dtype=torch.long, device=dev)
        else:
            state = torch.multinomial(start, 1, generator=generator).squeeze(-1)
        for h in range(episode_length):
            action = _argmax_random_ties(q[h, rows, state], generator)
            mean = reward_means[rows, state, action]
            reward = mean + torch.randn(b, generator=generator, device=dev, dtype=dt)
            u = torch.rand(b, 1, generator=generator, device=dev, dtype=dt)
            nxt = (cdf[rows, state, action] < u).sum(-1).clamp(max=s - 1)
            counts = counts.index_put(
                (rows, state, action, nxt), torch.ones_like(reward), accumulate=True
            )
            reward_sum = reward_sum.index_put((rows, state, action), reward, accumulate=True)
            visits = visits.index_put(
                (rows, state, action), torch.ones_like(reward), accumulate=True
            )
            total = total + reward
            state = nxt
    return total


def random_mdp(
    transitions: Tensor,
    reward_means: Tensor,
    num_episodes: int,
    generator: torch.Generator,
    episode_length: int = 10,
    initial_dist: Tensor | None = None,
) -> Tensor:
    """Uniformly random actions. Total reward `[B]` over all episodes."""

    def make_q(counts, reward_sum, visits, g):
        return torch.zeros(episode_length, *visits.shape, device=visits.device, dtype=visits.dtype)

    return _play_mdp(
        transitions, reward_means, num_episodes, episode_length, generator, initial_dist, make_q
    )


def _reward_posterior(
    reward_sum: Tensor, visits: Tensor, prior_mean: float, prior_std: float
) -> tuple[Tensor, Tensor]:
    """Normal posterior (mean, std) `[B, S, A]` of mean rewards under N(prior, prior_std^2)
    and unit-variance observation noise."""
    precision = 1.0 / prior_std**2 + visits
    mean = (prior_mean / prior_std**2 + reward_sum) / precision
    return mean, precision.rsqrt()


def psrl(
    transitions: Tensor,
    reward_means: Tensor,
    num_episodes: int,
    generator: torch.Generator,
    episode_length: int = 10,
    initial_dist: Tensor | None = None,
    transition_prior: float = 1.0,
    reward_prior_mean: float = 1.0,
    reward_prior_std: float = 1.0,
) -> Tensor:
    """Posterior sampling for RL (Osband et al. 2013): each episode, sample an MDP from the
    posterior and follow its optimal finite-horizon policy. Total reward `[B]`."""
    if transition_prior <= 0 or reward_prior_std <= 0:
        raise UsageError("PSRL needs transition_prior > 0 and reward_prior_std > 0")

    def make_q(counts, reward_sum, visits, g):
        p = sample_dirichlet(transition_prior + counts, g)
        mean, std = _reward_posterior(reward_sum, visits, reward_prior_mean, reward_prior_std)
        r = mean + std * torch.randn(mean.shape, generator=g, device=mean.device, dtype=mean.dtype)
        return plan(p, r, episode_length)

    return _play_mdp(
        transitions, reward_means, num_episodes, episode_length, generator, initial_dist, make_q
    )


def greedy_mdp(
    transitions: Tensor,
    reward_means: Tensor,
    num_episodes: int,
    generator: torch.Generator,
    episode_length: int = 10,
    initial_dist: Tensor | None = None,
    transition_prior: float = 1.0,
    reward_prior_mean: float = 1.0,
    reward_prior_std: float = 1.0,
) -> Tensor:
    """Certainty equivalence: follow the optimal policy of the posterior-mean MDP."""
    if transition_prior <= 0 or reward_prior_std <= 0:
        raise UsageError("greedy needs transition_prior > 0 and reward_prior_std > 0")

    def make_q(counts, reward_sum, visits, g):
        alpha = transition_prior + counts
        p = alpha / alpha.sum(-1, keepdim=True)
        mean, _ = _reward_posterior(reward_sum, visits, reward_prior_mean, reward_prior_std)
        return plan(p, mean, episode_length)

    return _play_mdp(
        transitions, reward_means, num_episodes, episode_length, generator, initial_dist, make_q
    )


# ---------------------------------------------------------------------------------------------
# Gittins index (Beta-Bernoulli arms, discounted)


def gittins_indices(
    max_pulls: int,
    discount: float,
    prior: tuple[float, float] = (1.0, 1.0),
    grid: int = 501,
    extra_depth: int | None = None,
) -> Tensor:
    """Gittins indices `[max_pulls + 1, max_pulls + 1]` (float64) of a Bernoulli arm with a
    Beta(prior) prior, indexed by (successes, failures); entries with s + f > max_pulls are nan.

    Calibration (Gittins 1979): the index of a state is the per-step retirement reward
    `lambda` at which continuing and retiring (`lambda / (1 - discount)` forever) are equally
    good. One backward induction per `lambda` on a grid of `grid` values in [0, 1], all grid
    values at once, over states with up to `max_pulls + extra_depth` pulls (beyond that an
    arm's mean is treated as known); the crossing is interpolated linearly between grid points.
    """
    if not 0.0 <= discount < 1.0:
        raise UsageError(f"Gittins discount must be in [0, 1), got {discount}")
    if max_pulls < 0 or grid < 2:
        raise UsageError(f"need max_pulls >= 0 and grid >= 2, got {max_pulls} and {grid}")
    a0, b0 = prior
    if extra_depth is None:
        extra_depth = (
            0 if discount == 0 else min(400, math.ceil(math.log(1e-4) / math.log(discount)))
        )
    depth = max_pulls + extra_depth
    lam = torch.linspace(0.0, 1.0, grid, dtype=torch.float64).unsqueeze(-1)  # [L, 1]
    retire = lam / (1.0 - discount)
    table = torch.full((max_pulls + 1, max_pulls + 1), float("nan"), dtype=torch.float64)
    v_next = None
    for m in range(depth, -1, -1):  # m = pulls so far; diagonal s = 0..m, f = m - s
        s = torch.arange(m + 1, dtype=torch.float64)
        p = (a0 + s) / (a0 + b0 + m)  # posterior mean of each state on this diagonal
        if v_next is None:
            # past the depth the mean is taken as known: pull once, then the better of the two
            cont = p + discount * torch.maximum(lam, p) / (1.0 - discount)
        else:
            cont = p * (1.0 + discount * v_next[:, 1:]) + (1 - p) * discount * v_next[:, :-1]
        if m <= max_pulls:
            diff = cont - retire  # [L, m + 1], non-increasing in lambda
            k = (diff > 0).sum(0).clamp(1, grid - 1)  # first grid point where retiring wins
            d0 = diff.gather(0, (k - 1).unsqueeze(0)).squeeze(0)
            d1 = diff.gather(0, k.unsqueeze(0)).squeeze(0)
            l0 = lam[k - 1, 0]
            frac = torch.where(d0 > d1, d0 / (d0 - d1), torch.zeros_like(d0))
            table[s.long(), m - s.long()] = l0 + frac.clamp(0, 1) * (lam[1, 0] - lam[0, 0])
        v_next = torch.maximum(retire, cont)
    return table


@functools.lru_cache(maxsize=16)
def _cached_gittins(max_pulls: int, discount: float) -> Tensor:
    return gittins_indices(max_pulls, discount)


def gittins(
    probs: Tensor, horizon: int, generator: torch.Generator, discount: float | None = None
) -> Tensor:
    """Play the arm of highest Gittins index (Beta(1, 1) prior). The index is optimal for the
    infinite discounted problem; for a horizon `n` we use `discount = 1 - 1 / n` by default."""
    _check_bandit(probs, horizon)
    gamma = 1.0 - 1.0 / max(horizon, 2) if discount is None else discount
    table = _cached_gittins(horizon, gamma).to(probs.device, torch.float32)

    def choose(t, pulls, wins, g):
        s, f = wins.long(), (pulls - wins).long()
        return _argmax_random_ties(table[s, f], g)

    return _play_bandit(probs, horizon, generator, choose)
