"""Meta-training on 2 real gloo processes equals it on one, for every few-shot learner: the
parameters after several meta-iterations, the learner-owned random streams, the logged metrics
(means over the whole meta-batch), the held-out curves (split across ranks and gathered); and
the whole `train` path (checkpoint, TensorBoard, results.json), where rank 1 writes nothing."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl import distributed as D
from metarl.checkpoint import load_checkpoint
from metarl.errors import EveryRankError
from metarl.fewshot import tasks as fewshot_tasks
from metarl.fewshot.maml import MAML
from metarl.registry import load_config
from metarl.trainer import build_run, combine_metrics, distribute, meta_iteration, train
from tests.conftest import OMNIGLOT_DIR
from tests.test_distributed import free_port

# 5 tasks on 2 ranks: the uneven split (3 + 2) with exact weights; eval batches of 6 split 3 + 3
# and a last batch of 2 (8 held-out tasks), final batches 6 + 4.
COMMON = [
    "device=cpu",
    "train.num_tasks=5",
    "train.iterations=4",
    "train.eval_interval=2",
    "train.checkpoint_interval=2",
    "train.log_interval=1",
    "eval.num_tasks=8",
    "eval.final_num_tasks=10",
    "eval.batch_tasks=6",
]
OMNI = [f"task.data_dir={OMNIGLOT_DIR}", "eval.max_budget=2"]
SMALL_CONV = ["learner.conv_channels=8"]

CASES: dict[str, tuple[str, list[str]]] = {
    "maml_second_order_vmap": ("sinusoid_maml", ["eval.max_budget=3"]),
    "maml_second_order_loop": (
        "sinusoid_maml",
        ["eval.max_budget=3", "learner.task_batching=loop"],
    ),
    "fomaml": ("sinusoid_maml", ["eval.max_budget=2", "learner.first_order=true"]),
    "metasgd": ("sinusoid_metasgd", ["eval.max_budget=2"]),
    "anil": ("sinusoid_anil", ["eval.max_budget=2"]),
    "maml_omniglot": (
        "omniglot_maml_5w1s",
        [*OMNI, *SMALL_CONV, "task.queries=2", "train.iterations=3"],
    ),
    "protonet": (
        "omniglot_protonet_5w1s",
        [*OMNI, *SMALL_CONV, "task.train_ways=5", "task.train_queries=2", "task.queries=2"],
    ),
    "matching": (
        "omniglot_matching_1shot",
        [*OMNI, *SMALL_CONV, "task.train_ways=5", "task.train_queries=2", "task.queries=2"],
    ),
    "relation": ("omniglot_relation_1shot", [*OMNI, *SMALL_CONV, "task.queries=2"]),
    "siamese_distorted": (
        "omniglot_siamese_1shot",
        [*OMNI, *SMALL_CONV, "task.train_ways=5", "task.train_queries=2", "task.queries=2"],
    ),
    "reptile": (
        "omniglot_reptile_5w1s",
        # the shipped configs carry the inner state from task to task (one process only)
        [
            *OMNI,
            *SMALL_CONV,
            "task.train_shots=2",
            "learner.inner_batch=4",
            "learner.inner_state=fresh",
        ],
    ),
    "mann": (
        "omniglot_mann_5w",
        [
            *OMNI,
            "task.shots=3",
            "task.queries=1",
            "task.image_size=28",  # the size every other case reads
            "learner.hidden_size=16",
            "learner.memory_slots=8",
            "learner.memory_width=8",
            "learner.grad_clip=0.01",  # clips every step: the norm must be the global one
        ],
    ),
    "lstm_optimizer": (
        "quadratic_lstm_optimizer",
        ["learner.optimizee_steps=6", "learner.unroll=3", "eval.max_budget=4"],
    ),
}
OMNIGLOT_CASES = {k for k, (name, _) in CASES.items() if name.startswith("omniglot")}
FULL = ["maml_second_order_vmap", "protonet"]  # also through `train` (files, TensorBoard)
# so small that every `train` call stops after one meta-iteration: 3 calls are 2 resumes
ONE_STEP = ["train.max_minutes=1e-9", "train.eval_interval=0"]


def resume_config():
    return load_config("sinusoid_maml", [*COMMON, "eval.max_budget=2", *ONE_STEP])


def case_config(case: str):
    name, extra = CASES[case]
    return load_config(name, [*COMMON, *extra])


def engine_run(case: str, out: Path, iterations: int = 3) -> None:
    """`iterations` meta-iterations of the engine (`meta_iteration`, the optimiser hooks of
    `distribute`, metrics combined over ranks) and one held-out curve, saved to `out`."""
    cfg = case_config(case)
    run = build_run(cfg, out.parent / "unused", threads=1)
    hooks = distribute(run)
    metrics = [combine_metrics(meta_iteration(run), cfg.train.num_tasks) for _ in range(iterations)]
    curve = run.evaluate(cfg.eval.split, cfg.eval.num_tasks)
    for hook in hooks:
        hook.remove()
    if D.get_world().is_main:
        state = {"metrics": metrics, "curve": curve, "learner": run.learner.state_dict()}
        torch.save(state, out)


@contextlib.contextmanager
def omniglot_loaded_once() -> Iterator[None]:
    """Omniglot read from its cache once per process (the same arrays every case)."""
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(fewshot_tasks, "load_omniglot", functools.cache(fewshot_tasks.load_omniglot))
        yield


def collective_checks() -> dict[str, Any]:
    """all_reduce_, sync_grads_ (weights, None gradients), gather_rows (uneven, dim 0 and -1),
    weighted_mean and the comm timer on this rank of 2; 5 rows split 3 + 2."""
    rank = D.get_world().rank
    out: dict[str, Any] = {}
    t = torch.tensor([1.0, 2.0]) * (rank + 1)
    out["sum"] = D.all_reduce_(t).tolist()
    # row i of 5 has gradient i + 1: local means, weighted by the shares, give the global mean;
    # b has a gradient on rank 0 only (None counts as zero), c on no rank (stays None)
    a = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(3))
    c = torch.nn.Parameter(torch.zeros(1))
    rows = D.shard(5)
    local = torch.arange(5.0)[rows] + 1
    a.grad = torch.full((2, 2), float(local.mean()))
    b.grad = torch.ones(3) if rank == 0 else None
    D.sync_grads_([a, b, c], D.local_weight(5))
    out["a"], out["c"] = a.grad.tolist(), c.grad
    out["b"] = b.grad.tolist() if b.grad is not None else None
    mine = torch.arange(5.0)[rows]
    out["rows"] = D.gather_rows(mine[:, None].repeat(1, 2), 5).tolist()
    out["cols"] = D.gather_rows(mine[None, :].repeat(3, 1), 5, dim=-1).tolist()
    out["weighted"] = D.weighted_mean({"loss": float(local.mean())}, D.local_weight(5))
    before = D.comm_seconds()
    D.barrier()
    out["timed"] = D.comm_seconds() > before > 0
    return out


def _rank(rank: int, port: int, root: str, cases: list[str], full: list[str]) -> None:
    os.environ.update(
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    assert D.init_world(torch.device("cpu")) == D.World(rank, 2)
    assert D.init_world(torch.device("cpu")) == D.World(rank, 2)  # idempotent
    torch.save(collective_checks(), Path(root) / f"collectives{rank}.pt")
    with omniglot_loaded_once():
        for case in cases:
            engine_run(case, Path(root) / "two" / f"{case}.pt")
        for case in full:  # rank 1 has a folder of its own: it must not write (or create) it
            train(case_config(case), Path(root) / f"rank{rank}" / case, progress=False)
        for _ in range(2):  # iteration 1, then resumed by two processes: iteration 2
            train(resume_config(), Path(root) / f"rank{rank}" / "resume", progress=False)
    # a learner that does not declare `distributed = True` is refused, before anything is kept
    with pytest.MonkeyPatch.context() as patch, pytest.raises(EveryRankError, match="yet"):
        patch.setattr(MAML, "distributed", False)
        train(resume_config(), Path(root) / f"rank{rank}" / "refused", progress=False)


def biases_before_batch_norm(model: dict[str, torch.Tensor]) -> set[str]:
    """Conv biases right before a batch norm (`P.0.bias` with a 4-d `P.0.weight` and a 1-d
    `P.1.weight`), which subtracts them again: their meta-gradient is zero in exact arithmetic
    and what they get is rounding noise, which Adam (outer, or Reptile's inner) turns into
    full steps, so one and two processes move them differently. Nothing the network computes
    depends on them."""
    out = set()
    for key in model:
        if key.endswith(".0.bias"):
            stem = key[: -len(".0.bias")]
            conv, norm = model.get(f"{stem}.0.weight"), model.get(f"{stem}.1.weight")
            if conv is not None and norm is not None and conv.dim() == 4 and norm.dim() == 1:
                out.add(key)
    return out


# Cases whose parameters get a wider absolute tolerance, with the reason. Siamese (8-channel
# conv-4): a batch-norm shift of the last block whose first meta-gradient is ~1e-8, Adam's eps
# scale, takes a first step of lr * g / (|g| + eps) that rounding moves by up to ~0.15 lr
# (1.4e-4 measured with lr 1e-3), though its later gradients agree to 5 digits; so this case
# also checks Adam's moments (the gradients' running sums) at the usual tolerance.
MODEL_ATOL = {"siamese_distorted": 5e-4}


def assert_close_states(a: dict[str, Any], b: dict[str, Any], model_atol: float = 1e-5) -> None:
    skip = biases_before_batch_norm(a["model"])
    model_a = {k: v for k, v in a["model"].items() if k not in skip}
    model_b = {k: v for k, v in b["model"].items() if k not in skip}
    torch.testing.assert_close(model_a, model_b, rtol=1e-4, atol=model_atol)
    if model_atol > 1e-5:
        moments_a, moments_b = a["optimizer"]["state"], b["optimizer"]["state"]
        assert moments_a.keys() == moments_b.keys()
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        params = [k for k in a["model"] if not k.endswith(buffers)]  # the optimiser's order
        assert len(params) == len(moments_a)
        for i, name in zip(sorted(moments_a), params, strict=True):
            if name in skip:  # rounding noise by construction (see biases_before_batch_norm)
                continue
            for key in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(
                    moments_a[i][key], moments_b[i][key], rtol=1e-3, atol=1e-6
                )
    for key in ("step_sizes",):  # Meta-SGD's learned step sizes
        if key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    gens_a, gens_b = a.get("generators", {}), b.get("generators", {})
    assert gens_a.keys() == gens_b.keys()
    for k in gens_a:  # learner-owned random streams moved exactly as in one process
        assert torch.equal(gens_a[k], gens_b[k]), f"generator {k}"
    if "scheduler" in a:
        assert a["scheduler"] == b["scheduler"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case run once by one process (root/one) and once by two (root/two); the full
    trainer cases also trained (root/one_full, root/rank0)."""
    root = tmp_path_factory.mktemp("dist")
    have_omniglot = (OMNIGLOT_DIR / "images_background.npz").is_file()
    cases = [c for c in CASES if have_omniglot or c not in OMNIGLOT_CASES]
    full = [c for c in FULL if have_omniglot or c not in OMNIGLOT_CASES]
    (root / "one").mkdir()
    (root / "two").mkdir()
    # the two processes run beside this one, which computes the one-process references
    two = mp.spawn(_rank, args=(free_port(), str(root), cases, full), nprocs=2, join=False)
    with omniglot_loaded_once():
        for case in cases:
            engine_run(case, root / "one" / f"{case}.pt")
        for case in full:
            train(case_config(case), root / "one_full" / case, progress=False)
    for _ in range(3):
        train(resume_config(), root / "one_full" / "resume", progress=False)
    while not two.join():  # re-raises a rank's failure
        pass
    # the run of two processes resumed by one: iteration 3
    train(resume_config(), root / "rank0" / "resume", progress=False)
    return root


def test_collectives_on_gloo(runs: Path) -> None:
    for rank in (0, 1):
        out = torch.load(runs / f"collectives{rank}.pt", weights_only=False)
        assert out["sum"] == [3.0, 6.0]
        assert out["a"] == [[3.0, 3.0], [3.0, 3.0]]  # the mean of 1..5
        assert out["b"] == pytest.approx([0.6] * 3)  # rank 0's share 3/5, summed with zeros
        assert out["c"] is None
        assert out["rows"] == [[float(i), float(i)] for i in range(5)]
        assert out["cols"] == [[float(i) for i in range(5)]] * 3
        assert out["weighted"]["loss"] == pytest.approx(3.0)
        assert out["timed"] is True


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_step_like_one(runs: Path, case: str) -> None:
    """Parameters, optimiser-owned and learner-owned state after 3 meta-iterations, the
    metrics (means over the whole meta-batch) and the held-out curve (split across ranks)."""
    if not (runs / "one" / f"{case}.pt").exists():
        pytest.skip(f"offline Omniglot copy not found at {OMNIGLOT_DIR}")
    one = torch.load(runs / "one" / f"{case}.pt", weights_only=False)
    two = torch.load(runs / "two" / f"{case}.pt", weights_only=False)
    assert_close_states(one["learner"], two["learner"], MODEL_ATOL.get(case, 1e-5))
    assert len(one["metrics"]) == len(two["metrics"]) == 3
    for m1, m2 in zip(one["metrics"], two["metrics"], strict=True):
        assert m1.keys() == m2.keys()
        assert list(m1.values()) == pytest.approx(list(m2.values()), rel=1e-4, abs=1e-6)
    c1, c2 = one["curve"], two["curve"]
    assert c1["num_tasks"] == c2["num_tasks"] == 8
    assert c1["mean"] == pytest.approx(c2["mean"], rel=1e-4, abs=1e-5)
    assert c1["ci95"] == pytest.approx(c2["ci95"], rel=1e-3, abs=1e-5)


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if tag.startswith(("meta/", "adapt/", "final/"))
    }


@pytest.mark.parametrize("case", FULL)
def test_trainer_on_two_processes_equals_one(runs: Path, case: str) -> None:
    """The whole `train` path: checkpoint, TensorBoard scalars, results.json."""
    one, two = runs / "one_full" / case, runs / "rank0" / case
    if not one.exists():
        pytest.skip(f"offline Omniglot copy not found at {OMNIGLOT_DIR}")
    a, b = (load_checkpoint(d / "checkpoints/last.pt") for d in (one, two))
    assert a["iteration"] == b["iteration"] == 4
    assert_close_states(a["learner"], b["learner"])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert ra["curve"]["num_tasks"] == rb["curve"]["num_tasks"] == 10
    assert ra["curve"]["mean"] == pytest.approx(rb["curve"]["mean"], rel=1e-4, abs=1e-5)
    sa, sb = scalars(one), scalars(two)
    assert sa.keys() == sb.keys() and any(k.startswith("adapt/") for k in sa)
    for tag in sa:  # meta/ metrics are the means over the whole meta-batch
        assert [s for s, _ in sa[tag]] == [s for s, _ in sb[tag]] != [], tag
        assert [v for _, v in sa[tag]] == pytest.approx([v for _, v in sb[tag]], rel=1e-3), tag


def test_a_run_of_two_processes_resumes_on_two_and_on_one_equal(runs: Path) -> None:
    """Iteration 1 on two processes, resumed on two (2), then on one (3), equals three
    one-process calls (each resuming the last)."""
    one, two = runs / "one_full" / "resume", runs / "rank0" / "resume"
    a, b = (load_checkpoint(d / "checkpoints/last.pt") for d in (one, two))
    assert a["iteration"] == b["iteration"] == 3
    assert_close_states(a["learner"], b["learner"])
    assert torch.equal(a["generators"]["train_tasks"], b["generators"]["train_tasks"])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert ra["curve"]["mean"] == pytest.approx(rb["curve"]["mean"], rel=1e-4, abs=1e-5)


def test_only_rank_0_writes(runs: Path) -> None:
    assert not (runs / "rank1").exists()
    assert not (runs / "rank0" / "refused").exists()  # a learner not proven equal: refused
    files = {p.name for p in (runs / "rank0" / FULL[0]).iterdir()}
    assert {"config.yaml", "checkpoints", "results.json", "curves.png"} <= files
