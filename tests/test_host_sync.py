"""No host synchronisation in the step loops: the tensor envs and RL²'s rollout and PPO.

On CPU, `tests.sync_recorder.HostSyncRecorder` (a `TorchFunctionMode`) sees every call that
would make the host wait for a GPU (`.item()`, `.cpu()`, `.tolist()`, `bool()`, `nonzero`,
...); the tests assert there are none per env step and a fixed few per meta-step (the trial's
env seed, the deferred finite checks, the metrics), however long the horizon. On CUDA the same
loops run under `torch.cuda.set_sync_debug_mode("error")` (skipped without a GPU).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from agents.rollout import RecurrentActor, rollout
from envs.tensor import FAMILIES, BanditVectorEnv
from envs.tensor.base import TensorVectorEnv
from metarl.cli import main
from metarl.errors import NonFiniteError, check_finite, deferred_finite_checks
from metarl.registry import load_config
from metarl.trainer import build_run
from tests.golden import cpu_kind, equals_a_record
from tests.sync_recorder import HostSyncRecorder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def _accelerator_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every env here takes the accelerator paths: on the CPU a family reads values on the
    host where that is free (`TensorVectorEnv._host_reads_are_free`: noise in blocks checked
    against the counters, no reset work on a step where no copy is done)."""
    monkeypatch.setattr(TensorVectorEnv, "_host_reads_are_free", lambda self: False)


def random_actions(env, steps: int, seed: int = 0) -> list[torch.Tensor]:
    space, g = env.single_action_space, torch.Generator(env.device).manual_seed(seed)
    n, dev = env.num_envs, env.device
    if hasattr(space, "n"):
        return [torch.randint(0, int(space.n), (n,), generator=g, device=dev) for _ in range(steps)]
    shape = (n, *space.shape)
    return [2 * torch.rand(shape, generator=g, device=dev) - 1 for _ in range(steps)]


def test_the_recorder_sees_each_kind_of_sync():
    x = torch.arange(4.0)
    with HostSyncRecorder() as rec:
        bool(x.any()), int(x[1]), float(x.sum()), x.sum().item(), x.tolist(), x.cpu()
        x[x > 1], x.nonzero(), torch.tensor([1.0]), torch.as_tensor([2.0])
        torch.where(x > 1, x, 0.0), x.sum(), torch.as_tensor(x)  # none of these
    names = [name for name, _ in rec.calls]
    assert names == [
        "__bool__", "__int__", "__float__", "item", "tolist", "cpu",
        "__getitem__", "nonzero", "tensor", "as_tensor",
    ]  # fmt: skip


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_tensor_env_step_loop_never_waits_for_the_device(cls):
    env = cls(num_envs=8, envs_per_task=2, check_actions=False)
    env.reset(seed=0)
    actions = random_actions(env, 3 * 50)  # past several horizons: autoresets included
    with HostSyncRecorder() as rec:
        for a in actions:
            env.step(a)
    assert rec.calls == []


def test_checked_actions_do_wait_which_is_why_rollouts_turn_the_check_off():
    env = BanditVectorEnv(num_envs=4, num_arms=3)  # check_actions=True: the user-facing default
    env.reset(seed=0)
    with HostSyncRecorder() as rec:
        env.step(torch.zeros(4, dtype=torch.int64))
    assert [name for name, _ in rec.calls] == ["__bool__", "__bool__"]  # min >= 0, max < n


def _rl2(name: str, overrides: list[str], tmp: Path):
    cfg = load_config(name, ["device=cpu", "learner.hidden_size=8", *overrides])
    run = build_run(cfg, tmp)
    return run, run.distribution.sample("train", cfg.train.num_tasks, run.generator)


def _sites(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, Path(place.rsplit(":", 1)[0]).name) for name, place in calls]


META_STEP_SYNCS = [  # the trial's env seed, the deferred finite checks, the metrics
    ("__int__", "rl2.py"),
    ("tolist", "errors.py"),
    ("tolist", "rl2.py"),
]


@pytest.mark.parametrize(
    "name, settings",
    [
        (
            "bandit_rl2_k5_n10",
            [["learner.episodes_per_trial=4"], ["learner.episodes_per_trial=40"]],
        ),
        ("tabular_rl2_n10", [["task.horizon=3"], ["task.horizon=12"]]),
    ],
)
def test_rl2_meta_step_syncs_a_fixed_few_times_whatever_the_horizon(name, settings, tmp_path):
    for overrides in settings:
        run, tasks = _rl2(name, ["train.num_tasks=2", "learner.ppo_epochs=2", *overrides], tmp_path)
        with HostSyncRecorder() as rec:
            metrics = run.learner.meta_step(tasks)
        assert _sites(rec.calls) == META_STEP_SYNCS, rec.calls
        assert metrics["env_steps"] > 0


def test_rollout_reads_the_device_once_per_trial(tmp_path):
    run, tasks = _rl2("tabular_rl2_n10", ["train.num_tasks=2"], tmp_path)
    learner = run.learner
    for episodes in (2, 9):
        env = learner._env(2, 1)
        actor = RecurrentActor(learner.policy, learner.train_generator)
        with HostSyncRecorder() as rec:
            traj = rollout(env, tasks, actor, episodes, seed=3)
        assert _sites(rec.calls) == [("tolist", "errors.py")]  # the deferred finite checks
        assert traj.mask.sum() == 2 * episodes * env.horizon


def test_a_diverged_policy_still_stops_with_one_non_finite_error(tmp_path):
    run, tasks = _rl2("bandit_rl2_k5_n10", ["train.num_tasks=2"], tmp_path)
    with torch.no_grad():
        for p in run.learner.policy.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="^non-finite policy logits$"):
        run.learner.meta_step(tasks)


def test_deferred_checks_return_the_tensor_unchanged_and_raise_at_the_end():
    x = torch.tensor([1.0, -2.0, 3.5])
    with deferred_finite_checks():
        assert torch.equal(check_finite(x, "a"), x)
    with pytest.raises(NonFiniteError, match="^non-finite b$"):
        with deferred_finite_checks():
            y = check_finite(torch.tensor([1.0, float("inf")]), "b")
            assert y.tolist() == [1.0, 0.0]  # sampling from it cannot fail
            with deferred_finite_checks():  # an inner block joins the outer one
                check_finite(torch.tensor([float("nan")]), "c")
    with pytest.raises(NonFiniteError, match="^non-finite d$"):
        check_finite(torch.tensor([float("nan")]), "d")  # outside a block: at once


GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_sync_free.json").read_text())


@pytest.mark.parametrize("name", list(GOLDEN["runs"]))
def test_seeded_rl2_runs_reproduce_the_numbers_of_the_syncing_loop(name, tmp_path):
    run = GOLDEN["runs"][name]  # tabular (no early end), navigation (Gaussian, ends early)
    args = [run["config"], *GOLDEN["tiny"], *run["overrides"], "--run-dir", str(tmp_path)]
    assert main(["train", *args, "--no-progress"]) == 0
    curve = json.loads((tmp_path / "results.json").read_text())["curve"]
    assert equals_a_record(curve, run), (cpu_kind(), curve)  # to the bit (tests/golden.py)


@contextlib.contextmanager
def sync_is_an_error() -> Iterator[None]:
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@cuda
@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_cuda_tensor_env_step_loop_under_sync_debug_error(cls):  # pragma: no cover - GPU only
    env = cls(num_envs=64, envs_per_task=4, device="cuda", check_actions=False)
    env.reset(seed=0)
    actions = random_actions(env, 120)
    torch.cuda.synchronize()
    with sync_is_an_error():
        for a in actions:
            env.step(a)
    torch.cuda.synchronize()


@cuda
def test_cuda_rl2_bandit_loop_under_sync_debug_error(tmp_path):  # pragma: no cover - GPU only
    cfg = load_config("bandit_rl2_k5_n10", ["device=cuda", "train.num_tasks=8"])
    run = build_run(cfg, tmp_path)
    learner = run.learner
    tasks = run.distribution.sample("train", cfg.train.num_tasks, run.generator)
    env = learner._env(tasks.num_tasks, learner.cfg.trials_per_task)
    actor = RecurrentActor(learner.policy, learner.train_generator)
    torch.cuda.synchronize()
    with deferred_finite_checks():  # its one read happens after the sync-free block
        with sync_is_an_error():
            traj = rollout(env, tasks, actor, learner.cfg.episodes_per_trial, seed=1)
            terms = learner._ppo(traj.trials())
    assert traj.rewards.is_cuda and torch.isfinite(terms["loss"]).all()
