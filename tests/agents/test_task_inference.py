"""Task inference (RMA-style): privileged phase 1, history-only phase 2 and evaluation."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import pytest
import torch
from gymnasium import spaces

from agents.sharding import task_rows
from agents.task_inference import (
    HistoryActor,
    TaskInferenceConfig,
    belief_params,
    build_task_inference,
    history_rows,
    history_windows,
    window_returns,
)
from envs.tensor.base import TensorVectorEnv
from metarl import registry
from metarl.cli import main
from metarl.errors import UsageError
from metarl.registry import load_config
from metarl.tasks import TaskBatch
from metarl.trainer import train
from tests.test_meta_rl_seam import CoinConfig, CoinTask, CoinVectorEnv

CPU = torch.device("cpu")
# The coin family: two arms, the paying one is the task, readable from one pull of history
# (the pulled arm and whether it paid). Blind: 1/2 per step; oracle: 1 per step.
COIN = CoinVectorEnv.distribution(horizon=10)
FAST = dict(hidden_sizes=[32], z_dim=2, history_length=4, outer_lr=3e-3, adapter_lr=3e-3)
FAST.update(ppo_epochs=3, minibatches=4, entropy_coef=0.01, eval_deterministic=False)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _learner(dist=COIN, seed: int = 0, **kw):
    return build_task_inference(TaskInferenceConfig(**{**FAST, **kw}), dist, CPU, seed)


def _train(learner, iterations: int, dist=COIN, num_tasks: int = 16):
    gen = torch.Generator().manual_seed(7)
    return [learner.meta_step(dist.sample("train", num_tasks, gen)) for _ in range(iterations)]


@dataclass(frozen=True)
class PoisonedCoinTask(CoinTask):
    """Coin tasks whose parameters cannot be read as features: anything that encodes them
    (the privileged path) raises, while the env still plays them."""

    def features(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise AssertionError("task parameters were read")


def test_evaluation_never_sees_the_task_parameters():
    learner = _learner(phase2_start=2)
    _train(learner, 4)
    tasks = COIN.sample("test", 32, torch.Generator().manual_seed(1))
    poisoned = PoisonedCoinTask(tasks.side)
    state = learner.eval_generator.get_state()
    curve = learner.adaptation_curve(tasks, 1)
    learner.eval_generator.set_state(state)
    assert torch.equal(learner.adaptation_curve(poisoned, 1), curve)
    learner.eval_generator.set_state(state)
    windows = learner.within_episode_curve(poisoned)
    learner.eval_generator.set_state(state)
    assert torch.equal(windows, learner.within_episode_curve(tasks))
    # The privileged oracle does read them: the poison is live.
    oracle = _learner(mode="oracle")
    with pytest.raises(AssertionError, match="task parameters were read"):
        oracle.adaptation_curve(poisoned, 0)


@pytest.mark.parametrize(
    ("adapter", "minibatch"), [("conv", "steps"), ("gru", "steps"), ("gru", "trials")]
)
def test_phase2_infers_the_task_from_one_step_and_reaches_the_oracle(adapter, minibatch):
    learner = _learner(phase2_start=25, adapter=adapter, adapter_minibatch=minibatch)
    metrics = _train(learner, 45)
    assert [m["phase"] for m in metrics] == [1.0] * 25 + [2.0] * 20
    test = COIN.sample("test", 200, torch.Generator().manual_seed(3))
    # z error after one step of history (step 0 has none): near zero.
    traj = learner.play(test, 1, 1, torch.Generator().manual_seed(4), history=True)
    rows, mask = history_rows(learner.agent, traj)  # [B, L, D]
    with torch.no_grad():
        z = learner.agent.embed(test.features())  # [T, z]
        pred = learner.agent.z_of(learner.agent.adapter.sequence(rows)[:, 1:])  # [B, L-1, z]
    err = (pred - z[:, None]).pow(2).sum(-1)
    assert err.mean() < 0.02 * z.pow(2).sum(-1).mean(), err.mean()
    assert metrics[-1]["z_mse"] < metrics[25]["z_mse_first"]
    # Return: history-only ~ the oracle (the same policy fed the true z); blind ~ 1/2 of it.
    ti = learner.adaptation_curve(test, 0)[0].mean().item()
    learner.cfg.mode = "oracle"
    oracle = learner.adaptation_curve(test, 0)[0].mean().item()
    learner.cfg.mode = "learner"
    blind = _learner(mode="blind")
    _train(blind, 45)
    blind_return = blind.adaptation_curve(test, 0)[0].mean().item()
    assert oracle > 9.5 and ti > 0.9 * oracle, (ti, oracle)
    assert blind_return < 6.5 < ti, (blind_return, ti)


@pytest.mark.parametrize("adapter", ["conv", "gru"])
def test_the_adaptation_module_sees_in_training_what_the_actor_saw(adapter):
    dist = CoinVectorEnv.distribution(horizon=5)
    learner = _learner(dist, phase2_start=0, adapter=adapter)
    tasks = dist.sample("train", 3, torch.Generator().manual_seed(0))
    traj = learner.play(tasks, 3, 2, torch.Generator().manual_seed(0), history=True)
    if adapter == "conv":  # the window of the last k rows, by hand
        windows, mask = history_windows(learner.agent, traj)  # trials [6, 15, k, D]
        with torch.no_grad():
            z = learner.agent.z_of(learner.agent.adapter(windows.flatten(0, 1)))
    else:  # the GRU run over the whole trial (across its 3 episodes) at once
        rows, mask = history_rows(learner.agent, traj)  # [6, 15, D]
        with torch.no_grad():
            z = learner.agent.z_of(learner.agent.adapter.sequence(rows).flatten(0, 1))
    with torch.no_grad():
        _, value = learner.agent.dist_value(traj.trials().obs.flatten(0, 1), z)
    # The actor's value output was computed from its own history: replaying gives it back.
    assert torch.allclose(value.view(mask.shape), traj.trials().values, atol=1e-6)
    # And the phase-2 regression's inputs are those: z at the valid steps, in PPO's order.
    x, mask2 = learner._valid_windows(traj)
    with torch.no_grad():
        inferred = learner.agent.z_of(learner._infer(x, mask2))
        assert torch.allclose(inferred, z[mask.reshape(-1) > 0], atol=1e-6)
    assert isinstance(learner.actor(tasks, 2, True, None), HistoryActor)


def test_a_minibatch_of_all_trials_is_the_minibatch_of_all_steps():
    """With one minibatch per pass both phase-2 modes regress on the mean over every valid
    step of the batch (trials weighted by their valid steps): one update, the same weights;
    with several, trial minibatches are a different partition (and cheaper for the GRU)."""
    dist = CoinVectorEnv.distribution(horizon=6)
    tasks = dist.sample("train", 5, torch.Generator().manual_seed(0))
    after = {}
    for minibatch in ("steps", "trials"):
        learner = _learner(
            dist, phase2_start=0, adapter="gru", adapter_minibatch=minibatch, minibatches=1,
            episodes_per_trial=2, envs_per_task=2,
        )  # fmt: skip
        traj = learner.play(tasks, 2, 2, torch.Generator().manual_seed(1), history=True)
        x, mask = learner._valid_windows(traj)
        out = learner._regress(tasks, traj, task_rows(tasks.num_tasks), x, mask)
        after[minibatch] = (out, learner.agent.adapter.state_dict())
    (steps, w_steps), (trials, w_trials) = after["steps"], after["trials"]
    assert steps["z_mse_first"] == pytest.approx(trials["z_mse_first"], rel=1e-5)
    for k in w_steps:
        assert torch.allclose(w_steps[k], w_trials[k], atol=1e-6), k
    with pytest.raises(UsageError, match="adapter_minibatch=trials needs learner.adapter=gru"):
        _learner(adapter="conv", adapter_minibatch="trials")


@pytest.mark.parametrize(
    ("mode", "privileged", "time"),
    [
        ("blind", True, False),
        ("oracle", True, False),
        ("oracle", False, True),
        ("blind", True, True),
    ],
)
def test_the_value_sees_task_and_time_in_training_only(mode, privileged, time):
    """`privileged_value` / `value_time`: the value the training actor stored (2 episodes per
    trial, so the step count restarts) is the value PPO recomputes from (observation, z, task
    parameters, t / horizon); what the value alone sees reaches it and not the policy; and
    evaluation of the blind agent runs on tasks whose parameters cannot be read."""
    learner = _learner(mode=mode, privileged_value=privileged, value_time=time)
    _train(learner, 3)
    agent, h = learner.agent, COIN.config.horizon
    tasks = COIN.sample("train", 8, torch.Generator().manual_seed(2))
    traj = learner.play(tasks, 2, 2, torch.Generator().manual_seed(3), False, training=True)
    obs = traj.trials().obs  # [B, L = 2h, O]
    b, length = obs.shape[:2]
    feats = tasks.features().repeat_interleave(2, 0)[:, None].expand(b, length, -1)
    steps = (torch.arange(length) % h / h).expand(b, length)  # restarts with episode 2
    z = None if mode == "blind" else agent.embed(tasks.features()).repeat_interleave(2, 0)
    z = None if z is None else z[:, None].expand(b, length, -1)
    with torch.no_grad():
        dist, value = agent.dist_value(obs, z, agent.critic_input(feats, steps))
        _, moved = agent.dist_value(obs, z, agent.critic_input(1.0 - feats, 1.0 - steps))
        dist_alone, zeros = agent.dist_value(obs, z)
    assert torch.allclose(value, traj.trials().values, atol=1e-6)
    assert not torch.allclose(value, moved, atol=1e-3)  # the value's own inputs reach it
    assert torch.equal(dist.logits, dist_alone.logits)  # ... and not the policy
    assert torch.equal(zeros, torch.zeros_like(zeros))  # none given: no value computed
    if mode == "blind":  # nor does evaluation read the task
        poisoned = PoisonedCoinTask(tasks.side)
        assert learner.adaptation_curve(poisoned, 0).shape == (1, 8)


def test_the_gru_module_remembers_what_left_the_window():
    """A cue seen only at step 0 of 12 (then zeros): the GRU learns to report it at every
    step; the window of the last 4 steps cannot after step 3 (it holds only zeros then)."""
    from agents.task_inference import AdaptationModule, RecurrentAdaptationModule

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    modules = {"gru": RecurrentAdaptationModule(3, 16, 1), "conv": AdaptationModule(3, 4, 16, 1)}
    late = {}
    for name, module in modules.items():
        opt = torch.optim.Adam(module.parameters(), lr=1e-2)
        for _ in range(150):
            cue = torch.randint(0, 2, (64,), generator=gen).float() * 2 - 1  # [B]
            rows = torch.zeros(64, 12, 3)
            rows[:, 0, 0], rows[:, :, 2] = cue, 1.0  # the cue, then a "valid" channel
            loss = (module.sequence(rows)[..., 0].tanh() - 0.9 * cue[:, None]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z = module.sequence(rows)[..., 0].tanh()  # [B, 12]
        late[name] = (z[:, 4:] - 0.9 * cue[:, None]).pow(2).mean().item()
        # step() one row at a time gives what sequence() gives (the actor's path).
        state = module.initial_state(64, 3, "cpu")
        with torch.no_grad():
            for t in range(12):
                zt, state = module.step(rows[:, t], state)
                assert torch.allclose(zt[:, 0].tanh(), z[:, t], atol=1e-5)
    assert late["gru"] < 0.01 and late["conv"] > 0.5, late


def test_belief_nll_is_the_gaussian_negative_log_likelihood():
    from agents.task_inference import belief_nll

    out, target = torch.randn(7, 6), torch.randn(7, 3)
    mean, log_std = out[:, :3], out[:, 3:].clamp(-6, 2)
    logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(target).sum(-1)
    const = 1.5 * torch.log(torch.tensor(2 * torch.pi))
    assert torch.allclose(belief_nll(out, target), -logp - const, atol=1e-5)


def test_the_sampled_belief_commits_to_one_draw_per_trial():
    """`belief: sample`: the actor acts on z = encoder(mean + std * eps) with eps drawn once
    per trial (each copy its own; the same from the same generator state)."""
    learner = _learner(CoinVectorEnv.distribution(horizon=6), phase2_start=0, belief="sample")
    a = learner.agent
    actor = learner.actor(COIN.sample("train", 4, torch.Generator()), 2, True,
                          torch.Generator().manual_seed(3))  # fmt: skip
    window, eps = actor.initial_state(8)
    assert eps.shape == (8, 1) and eps.std() > 0 and window.shape == (8, 4, a.step_dim)
    again = learner.actor(COIN.sample("train", 4, torch.Generator()), 2, True,
                          torch.Generator().manual_seed(3)).initial_state(8)[1]  # fmt: skip
    assert torch.equal(eps, again)
    state = (window, eps)
    obs, prev = torch.zeros(8, 1), (torch.full((8,), -1), torch.zeros(8), torch.zeros(8))
    for _ in range(3):
        out = actor(obs, *prev, state)
        assert torch.equal(out.state[1], eps)  # the draw stays for the whole trial
        state = out.state
    # z is the encoder's image of the draw mean + std * eps (log-std floored at -6).
    o = torch.tensor([[0.3, -20.0]])
    sure = torch.tanh(a.encoder(torch.tensor([[0.3 + 5 * math.exp(-6.0)]])))
    assert torch.allclose(a.z_of(o, torch.tensor([[5.0]])), sure)
    o = torch.tensor([[0.3, 0.0]])
    assert torch.allclose(a.z_of(o, torch.tensor([[1.0]])), torch.tanh(a.encoder(o[:, :1] + 1)))


def test_sampled_belief_phase2_narrows_on_the_task_and_reaches_the_oracle():
    learner = _learner(phase2_start=25, adapter="gru", belief="sample")
    metrics = _train(learner, 45)
    assert metrics[-1]["belief_nll"] < metrics[25]["belief_nll_first"]
    test = COIN.sample("test", 200, torch.Generator().manual_seed(3))
    traj = learner.play(test, 1, 1, torch.Generator().manual_seed(4), history=True)
    rows, _ = history_rows(learner.agent, traj)
    with torch.no_grad():
        mean, log_std = belief_params(learner.agent.adapter.sequence(rows))  # [B, L, 1]
        truth = learner.agent.task_norm(test.features())  # [T, 1]: +-1
    # After one pull the belief sits on the task and is sure of it; before, it is not.
    err, std = (mean - truth[:, None]).abs()[..., 0], log_std.exp()[..., 0]  # [B, L]
    assert err[:, 0].mean() > 0.8 and std[:, 0].min() > 0.5  # step 0: no pull seen yet
    assert err[:, 1:].mean() < 0.1 and std[:, 1:].mean() < 0.15
    ti = learner.adaptation_curve(test, 0)[0].mean().item()
    learner.cfg.mode = "oracle"
    oracle = learner.adaptation_curve(test, 0)[0].mean().item()
    assert oracle > 9.5 and ti > 0.9 * oracle, (ti, oracle)


def test_window_rows_equal_returns_from_the_raw_trajectories():
    from envs.tensor import CartPoleDistribution

    dist = CartPoleDistribution(horizon=25)  # an untrained policy drops the pole: early ends
    learner = _learner(dist, window=10, history_length=5)
    tasks = dist.sample("test", 4, torch.Generator().manual_seed(0))
    traj = learner.play(tasks, 2, 3, torch.Generator().manual_seed(0), history=True)
    assert (traj.mask[:, ::2] == 0).any()  # padding is present and must not count
    rows = window_returns(traj, 10)  # [3, T]
    expect = torch.zeros(3, 4)
    for t in range(4):
        for trial in range(3):  # episode 1 of each trial is episode 2 * trial of the task
            r, m = traj.rewards[t, 2 * trial], traj.mask[t, 2 * trial]
            for step in range(25):
                expect[step // 10, t] += float(r[step] * m[step]) / 3
    assert torch.allclose(rows, expect, atol=1e-5)
    # The learner's rows are these windows of its evaluation trial's first episode.
    state = learner.eval_generator.get_state()
    first = learner.within_episode_curve(tasks)
    learner.eval_generator.set_state(state)
    played = learner._evaluate_play(tasks, 1)
    assert torch.allclose(first.sum(0), played.episode_returns().mean(1), atol=1e-4)


def test_finetuning_acts_on_the_z_the_actor_used_and_leaves_the_encoder():
    from envs.tensor import CartPoleDistribution

    dist = CartPoleDistribution(horizon=20)  # early ends: padding inside the trials
    learner = _learner(dist, phase2_start=0, finetune_policy=True, episodes_per_trial=2)
    tasks = dist.sample("train", 4, torch.Generator().manual_seed(0))
    traj = learner.play(tasks, 2, 1, torch.Generator().manual_seed(0), history=True)
    assert (traj.mask == 0).any()
    # The z `_finetune` hands to PPO, in PPO's step order, is the one the actor acted on:
    # the policy's log-probabilities of the taken actions come back exactly.
    windows, mask = history_windows(learner.agent, traj)
    valid = traj.mask.reshape(-1) > 0
    with torch.no_grad():
        x = windows.reshape(-1, *windows.shape[2:])[mask.reshape(-1) > 0]
        z = learner.agent.z_of(learner.agent.adapter(x))
        obs = traj.obs.reshape(-1, traj.obs.shape[-1])[valid]
        dist_, _ = learner.agent.dist_value(obs, z)
    logp = dist_.log_prob(traj.actions.reshape(-1)[valid])
    assert torch.allclose(logp, traj.log_probs.reshape(-1)[valid], atol=1e-5)
    # A phase-2 step trains policy, value and module; encoder and obs statistics stay.
    a = learner.agent
    frozen = {k: v.clone() for k, v in a.state_dict().items() if k.startswith(("encoder", "obs"))}
    policy = [p.clone() for p in a.policy.parameters()]
    metrics = learner.meta_step(tasks)
    assert metrics["phase"] == 2.0 and "finetune_policy_loss" in metrics and "z_mse" in metrics
    assert all(torch.equal(a.state_dict()[k], v) for k, v in frozen.items())
    assert any(not torch.equal(p, q) for p, q in zip(policy, a.policy.parameters(), strict=True))
    # Without finetuning the policy is frozen in phase 2.
    still = _learner(dist, phase2_start=0, episodes_per_trial=2)
    before = [p.clone() for p in still.agent.policy.parameters()]
    still.meta_step(tasks)
    assert all(
        torch.equal(p, q) for p, q in zip(before, still.agent.policy.parameters(), strict=True)
    )


TINY = ["device=cpu", "train.num_tasks=4", "train.eval_interval=2", "train.checkpoint_interval=1"]
TINY += ["eval.num_tasks=4", "eval.final_num_tasks=8", "eval.batch_tasks=4", "eval.max_budget=1"]
LEARNER = "kind: task_inference\n  hidden_sizes: [16]\n  z_dim: 2\n  history_length: 3\n"


@pytest.fixture
def coin(monkeypatch, tmp_path):
    """The coin family registered for one test, and its run config file."""
    monkeypatch.setattr(registry, "DISTRIBUTIONS", dict(registry.DISTRIBUTIONS))
    registry.register_distribution("coin", CoinVectorEnv)
    path = tmp_path / "coin.yaml"
    path.write_text(
        f"name: coin\nseed: 0\ntask:\n  kind: coin\n  horizon: 4\nlearner:\n  {LEARNER}"
    )
    return path


def test_resume_across_the_phase_boundary_is_bit_identical(coin, tmp_path):
    over = [*TINY, "train.iterations=5", "learner.phase2_start=2", "learner.ppo_epochs=2"]
    whole = tmp_path / "whole"
    assert main(["train", str(coin), *over, "--run-dir", str(whole), "--no-progress"]) == 0
    # The same run stopped at the end of phase 1, then resumed into phase 2.
    cfg = dataclasses.replace(load_config(str(coin), over))
    cfg.train.iterations = 2
    part = tmp_path / "part"
    train(cfg, part, progress=False, final_eval=False)
    text = (part / "config.yaml").read_text().replace("iterations: 2", "iterations: 5")
    (part / "config.yaml").write_text(text)
    assert main(["resume", str(part), "--no-progress"]) == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (whole, part))
    assert a["curve"]["mean"] == b["curve"]["mean"]
    assert a["within_episode"]["mean"] == b["within_episode"]["mean"]
    sa, sb = (torch.load(d / "checkpoints/last.pt", weights_only=True) for d in (whole, part))
    for key, value in sa["learner"]["model"].items():
        assert torch.equal(value, sb["learner"]["model"][key]), key
    assert sa["learner"]["iteration"] == 5 and "adapter_optimizer" in sa["learner"]


@dataclass(frozen=True)
class BlankTask(TaskBatch):
    """A task with no parameters to encode: `none [T, 0]`."""

    none: torch.Tensor


class BlankVectorEnv(CoinVectorEnv):
    config_type, task_type = CoinConfig, BlankTask

    @classmethod
    def spaces(cls, config):
        return spaces.Box(0.0, 1.0, (1,), "float32"), spaces.Discrete(2)

    @classmethod
    def sample_tasks(cls, config, split, num_tasks, generator):
        return BlankTask(torch.zeros(num_tasks, 0))

    def _set_tasks(self, tasks) -> None:
        self._side = torch.zeros(self.num_envs, dtype=torch.long)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["learner.history_length=0"], "history_length must lie in [1, 4]"),
        (["learner.history_length=5"], "history_length must lie in [1, 4]"),
        (["learner.phase2_start=3", "train.iterations=3"], "phase2_start=3 must be below"),
        (["task.kind=blank"], "has no task parameters to encode"),
        (["learner.belief=sample", "learner.finetune_policy=true"], "needs learner.belief=point"),
        (["learner.belief=guess"], "belief"),
        (
            ["learner.privileged_value=true", "learner.finetune_policy=true"],
            "privileged_value needs learner.finetune_policy=false",
        ),
        (
            ["learner.value_time=true", "learner.finetune_policy=true"],
            "value_time needs learner.finetune_policy=false",
        ),
        (["learner.adapter=conv", "learner.adapter_minibatch=trials"], "needs learner.adapter=gru"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(coin, tmp_path, capsys, extra, message):
    registry.register_distribution("blank", BlankVectorEnv)
    assert issubclass(BlankVectorEnv, TensorVectorEnv)
    rc = main(
        ["train", str(coin), *TINY, *extra, "--run-dir", str(tmp_path / "r"), "--no-progress"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err


def test_resuming_with_a_changed_encoder_is_refused_and_keeps_the_checkpoint(
    coin, tmp_path, capsys
):
    run = tmp_path / "run"
    args = ["train", str(coin), *TINY, "train.iterations=3", "learner.phase2_start=2"]
    assert main([*args, "--run-dir", str(run), "--no-progress"]) == 0
    before = (run / "checkpoints/last.pt").read_bytes()
    capsys.readouterr()
    rc = main([*args, "learner.z_dim=4", "--run-dir", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "z_dim" in err and len(err.splitlines()) == 1, err
    assert (run / "checkpoints/last.pt").read_bytes() == before
    # Loading the checkpoint into a learner of another encoder size: one-line UsageError.
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)["learner"]
    other = _learner(CoinVectorEnv.distribution(horizon=4), z_dim=4)
    with pytest.raises(UsageError, match="resume with the config the run was trained with"):
        other.load_state_dict(state)


@pytest.mark.parametrize("kind", ["bandit", "tabular_mdp", "gridworld", "cartpole", "pendulum"])
def test_every_tensor_family_runs_both_phases(kind):
    config_cls, build = registry._resolve(registry.DISTRIBUTIONS, kind, "task")
    dist = build(config_cls(), CPU)
    horizon = dist.horizon
    learner = _learner(dist, phase2_start=1, history_length=min(4, horizon), ppo_epochs=1)
    metrics = _train(learner, 2, dist, num_tasks=2)
    assert [m["phase"] for m in metrics] == [1.0, 2.0]
    tasks = dist.sample("test", 2, torch.Generator().manual_seed(0))
    assert learner.adaptation_curve(tasks, 1).shape == (2, 2)


def test_running_norm_equals_the_statistics_of_all_rows_seen():
    from agents.task_inference import RunningNorm

    g = torch.Generator().manual_seed(0)
    rows = [torch.randn(n, 3, generator=g) * 4 + 2 for n in (5, 1, 17)]
    norm = RunningNorm(3)
    for x in rows:
        norm.update(x)
    every = torch.cat(rows).double()
    assert torch.allclose(norm.mean, every.mean(0))
    assert torch.allclose(norm.m2 / (norm.count - 1), every.var(0))
    out = norm(every.float())
    assert torch.allclose(out.mean(0), torch.zeros(3, dtype=torch.float32), atol=1e-5)


def test_learner_and_oracle_are_one_computation_through_phase_1():
    # The benchmark trains phase 1 once for both rows: this is why that is the same numbers.
    learner, oracle = _learner(phase2_start=3), _learner(mode="oracle")
    _train(learner, 3), _train(oracle, 3)
    a, b = learner.state_dict(), oracle.state_dict()
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    assert torch.equal(a["generators"]["train"], b["generators"]["train"])
    assert learner.phase == 2 and oracle.phase == 1
