"""The meta-RL seam: a new family and a new learner are one file each; numbers from before the
refactor reproduce to the bit; format-1 run directories still evaluate."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.policies import make_mlp_policy
from agents.rollout import MLPActor, make_batched_env, rollout
from envs.tensor.base import TensorVectorEnv, check_positive_int
from metarl import registry
from metarl.cli import main
from metarl.contracts import Learner, MetaRLDistribution, MetaVectorEnv
from metarl.seeding import make_generator, seeded
from metarl.tasks import TaskBatch
from tests.golden import cpu_kind, equals_a_record

DATA = Path(__file__).parent / "data"
TINY = [
    "device=cpu",
    "train.iterations=3",
    "train.num_tasks=4",
    "train.eval_interval=2",
    "train.checkpoint_interval=1",
    "eval.num_tasks=4",
    "eval.final_num_tasks=8",
    "eval.batch_tasks=4",
    "eval.max_budget=2",
]


# --- a new environment family: this much, in one file ---------------------------------------
@dataclass(frozen=True)
class CoinTask(TaskBatch):
    """`side [T]`: the arm (0 or 1) that pays 1; the other pays 0."""

    side: torch.Tensor


@dataclass(frozen=True)
class CoinConfig:
    horizon: int = 3
    """Pulls per episode."""

    def __post_init__(self) -> None:
        check_positive_int("horizon", self.horizon)


class CoinVectorEnv(TensorVectorEnv[CoinConfig, CoinTask]):
    """A two-armed bandit whose paying arm is the task: readable from one pull."""

    config_type, task_type = CoinConfig, CoinTask

    @classmethod
    def spaces(cls, config: CoinConfig) -> tuple[spaces.Space, spaces.Space]:
        return spaces.Box(0.0, 1.0, (1,), np.float32), spaces.Discrete(2)

    @classmethod
    def sample_tasks(cls, config: CoinConfig, split: str, num_tasks: int, generator):
        side = torch.randint(0, 2, (num_tasks,), generator=generator, device=generator.device)
        return CoinTask(side.float())

    def _set_tasks(self, tasks: CoinTask) -> None:
        self._side = tasks.side.long()[self.task_id]  # [N]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        return self._zeros(1)

    def _step(self, actions: torch.Tensor):
        reward = (actions == self._side).float()
        return self._zeros(1), reward, self._zeros(dtype=torch.bool)


# --- a new RL learner: this much, in one file (the README's worked example) -------------------
@dataclass
class BlindPGConfig:
    episodes_per_task: int = 8
    """Episodes per task per meta-step."""
    outer_lr: float = 0.05
    """Adam step size."""


class BlindPG:
    """Task-blind REINFORCE: one MLP policy for all tasks, no adaptation (flat curve)."""

    metric, higher_is_better, budget_name, headline_budget = "return", True, "episodes", 0

    def __init__(self, cfg: BlindPGConfig, distribution: MetaRLDistribution, seed: int) -> None:
        self.cfg, self.distribution = cfg, distribution
        with seeded(seed, "model"):
            self.policy = make_mlp_policy(
                distribution.observation_space, distribution.action_space, hidden_sizes=(8,)
            )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.outer_lr)
        self.train_generator = make_generator(seed, "blind/train")
        self.eval_generator = make_generator(seed, "blind/eval")

    def _play(self, tasks: Any, gen: torch.Generator):
        env = make_batched_env(self.distribution, tasks.num_tasks, self.cfg.episodes_per_task)
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        return rollout(env, tasks, MLPActor(self.policy, gen), 1, seed)

    def meta_step(self, tasks: Any) -> dict[str, float]:
        traj = self._play(tasks, self.train_generator)
        returns = traj.episode_returns()  # [T, E]
        adv = (returns - returns.mean()).unsqueeze(-1).expand_as(traj.rewards)
        logp = self.policy(traj.obs).log_prob(traj.actions)
        loss = -(logp * adv * traj.mask).sum() / traj.mask.sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "return": returns.mean().item()}

    def adapt(self, tasks: Any, budget: int) -> None:
        return None

    def evaluate(self, adapted: None, tasks: Any) -> torch.Tensor:
        return self._play(tasks, self.eval_generator).episode_returns().mean(1)

    def adaptation_curve(self, tasks: Any, max_budget: int) -> torch.Tensor:
        return self.evaluate(None, tasks).expand(max_budget + 1, -1)

    def state_dict(self) -> dict[str, Any]:
        gens = {"train": self.train_generator, "eval": self.eval_generator}
        return {
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": {k: g.get_state() for k, g in gens.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])


@pytest.fixture
def plugins(monkeypatch):
    """Register the toy family and learner for one test (the registry tables are restored)."""
    monkeypatch.setattr(registry, "DISTRIBUTIONS", dict(registry.DISTRIBUTIONS))
    monkeypatch.setattr(registry, "LEARNERS", dict(registry.LEARNERS))
    registry.register_distribution("coin", CoinVectorEnv)
    registry.register_learner(
        "blind_pg", BlindPGConfig, lambda cfg, dist, device, seed: BlindPG(cfg, dist, seed)
    )


def _yaml(tmp_path: Path, learner: str) -> Path:
    path = tmp_path / "coin.yaml"
    path.write_text(f"name: coin\nseed: 0\ntask:\n  kind: coin\nlearner:\n  {learner}\n")
    return path


def _train(tmp_path: Path, learner: str, *extra: str) -> dict[str, Any]:
    run_dir = tmp_path / "run"
    args = ["train", str(_yaml(tmp_path, learner)), *TINY, *extra, "--run-dir", str(run_dir)]
    assert main([*args, "--no-progress"]) == 0
    return json.loads((run_dir / "results.json").read_text())


def test_toy_family_is_a_meta_rl_distribution_and_env(plugins):
    dist = CoinVectorEnv.distribution(horizon=2)
    assert isinstance(dist, MetaRLDistribution)
    tasks = dist.sample("test", 3, torch.Generator().manual_seed(0))
    env = dist.make_env(3, 2)
    assert isinstance(env, MetaVectorEnv)
    env.reset(seed=0, options={"tasks": tasks})
    side = tasks.side.long().repeat_interleave(2)
    _, reward, _, truncated, _ = env.step(side)
    assert reward.tolist() == [1.0] * 6 and not truncated.any()
    _, reward, _, truncated, info = env.step(1 - side)
    assert reward.tolist() == [0.0] * 6 and truncated.all() and info["_final_obs"].all()


def test_toy_family_trains_with_rl2_through_the_cli(plugins, tmp_path):
    res = _train(tmp_path, "kind: rl2", "learner.hidden_size=16", "learner.episodes_per_trial=3")
    assert res["iterations"] == 3 and len(res["curve"]["mean"]) == 3


def test_toy_family_trains_with_maml_rl_through_the_cli(plugins, tmp_path):
    res = _train(
        tmp_path, "kind: maml_rl", "learner.hidden_sizes=[8]", "learner.episodes_per_task=4"
    )
    assert res["iterations"] == 3 and len(res["curve"]["mean"]) == 3


def test_toy_learner_trains_on_a_shipped_family_and_resumes_to_the_bit(plugins, tmp_path):
    learner: Learner = BlindPG(BlindPGConfig(), CoinVectorEnv.distribution(), 0)
    assert isinstance(learner, Learner)
    res = _train(tmp_path, "kind: blind_pg", "task.horizon=2")
    assert res["iterations"] == 3
    # The toy learner reaches the seam's kill-and-resume guarantee with nothing extra.
    again = tmp_path / "again"
    again.mkdir()
    rc = main(["train", str(_yaml(again, "kind: blind_pg")), *TINY, "task.horizon=2",
               "train.iterations=2", "--run-dir", str(again / "run"), "--no-progress"])  # fmt: skip
    assert rc == 0
    cfg = (again / "run" / "config.yaml").read_text().replace("iterations: 2", "iterations: 3")
    (again / "run" / "config.yaml").write_text(cfg)
    assert main(["resume", str(again / "run"), "--no-progress"]) == 0
    resumed = json.loads((again / "run" / "results.json").read_text())
    assert resumed["curve"]["mean"] == res["curve"]["mean"]


GOLDEN = json.loads((DATA / "golden_v1.json").read_text())
MUJOCO = {"cheetah_slope_trpo", "cheetah_slope_rl2"}


@pytest.mark.parametrize("name", list(GOLDEN["runs"]))
def test_seeded_runs_reproduce_the_numbers_recorded_before_the_refactor(name, tmp_path):
    if name in MUJOCO:
        pytest.importorskip("mujoco")
    run = GOLDEN["runs"][name]
    args = [run["config"], *GOLDEN["tiny"], *run["overrides"], "--run-dir", str(tmp_path)]
    assert main(["train", *args, "--no-progress"]) == 0
    curve = json.loads((tmp_path / "results.json").read_text())["curve"]
    assert equals_a_record(curve, run), (cpu_kind(), curve)  # to the bit (tests/golden.py)


@pytest.mark.parametrize("name", ["navigation_maml_trpo", "bandit_rl2", "sinusoid_maml"])
def test_format_1_run_directories_still_evaluate_to_their_recorded_curve(name, tmp_path, capsys):
    run_dir = tmp_path / name
    shutil.copytree(DATA / "v1" / name, run_dir)
    recorded = json.loads((run_dir / "results.json").read_text())["curve"]
    out = tmp_path / "eval.json"
    assert main(["eval", str(run_dir), "--out", str(out)]) == 0
    others = json.loads((DATA / "v1" / "other_cpus.json").read_text()).get(name, [])
    got = json.loads(out.read_text())["curve"]
    assert equals_a_record(got, {**recorded, "other_cpus": others}, ("mean",)), cpu_kind()


def test_renamed_config_keys_say_their_new_name(capsys):
    rc = main(["train", "navigation_maml_trpo", "learner.hidden=[8]", "--run-dir", "/nonexistent"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learner.hidden_sizes" in err
