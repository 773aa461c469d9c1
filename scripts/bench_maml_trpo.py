"""MAML-TRPO cost on 2-D navigation: the first-order Fisher metric against the exact one.

Per setting of `learner.fisher`: median seconds of a meta-iteration (20 tasks x 20 episodes,
64-64 policy) and of one Fisher-vector product, and the cosine between the two products.

    python scripts/bench_maml_trpo.py --out results/maml_trpo.json   # also writes .md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cuda_stats import mib, timed  # noqa: E402

from agents.maml_rl import (  # noqa: E402
    adapt_params,
    detach_distribution,
    expand_params,
    mean_task_kl,
    policy_dist,
)
from agents.optim import fisher_vector_product  # noqa: E402
from metarl import registry  # noqa: E402
from metarl.registry import load_config  # noqa: E402

CPU = torch.device("cpu")


def _learner(fisher: str, device: torch.device = CPU):
    over = [f"device={device.type}", "learner.hidden_sizes=[64,64]", f"learner.fisher={fisher}"]
    cfg = load_config("navigation_maml_trpo", over)
    dist = registry.build_distribution(cfg, device)
    return dist, registry.build_learner(cfg, dist, device)


def iteration_seconds(fisher: str, repeats: int, device: torch.device = CPU) -> float:
    """Median seconds of a meta-iteration; on CUDA the peak memory lands in `CUDA_MAX_MIB`."""
    dist, learner = _learner(fisher, device)
    gen = torch.Generator(device).manual_seed(0)
    learner.meta_step(dist.sample("train", 20, gen))  # warm-up
    times = []
    with timed(device) as block:
        for _ in range(repeats):
            start = time.perf_counter()
            learner.meta_step(dist.sample("train", 20, gen))  # TRPO reads its losses: synced
            times.append(time.perf_counter() - start)
    if block.cuda_max_mib is not None:
        CUDA_MAX_MIB[fisher] = block.cuda_max_mib
    return statistics.median(times)


CUDA_MAX_MIB: dict[str, float] = {}


def products(repeats: int) -> dict[str, float]:
    """Seconds per product of each metric and their cosine, on one sampled meta-batch."""
    dist, learner = _learner("exact")
    collected = learner.collect(dist.sample("train", 20, torch.Generator().manual_seed(0)))
    supports, query, adapted = collected.supports, collected.query, collected.adapted
    with torch.no_grad():
        old = detach_distribution(policy_dist(learner.policy, adapted, query.obs))
    theta = learner.theta()

    def kl(first_order: bool):
        cfg = dataclasses.replace(learner.cfg, first_order=first_order)

        def fn(p):
            new = adapt_params(learner.policy, expand_params(p, 20), supports, cfg)
            return mean_task_kl(old, policy_dist(learner.policy, new, query.obs), query.mask)

        return fn

    n = sum(t.numel() for t in theta.values())
    v = torch.randn(n, generator=torch.Generator().manual_seed(1))
    out: dict[str, float] = {}
    vecs = {}
    for name, first_order in (("exact", False), ("first_order", True)):
        fvp = fisher_vector_product(kl(first_order), theta, 0.0)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            vecs[name] = fvp(v)
            times.append(time.perf_counter() - start)
        out[f"product_s_{name}"] = statistics.median(times)
    a, b = vecs["exact"], vecs["first_order"]
    out["cosine"] = (a @ b / (a.norm() * b.norm())).item()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write JSON (and .md beside)")
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda adds a CUDA max column"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    res = products(args.repeats)
    for fisher in ("exact", "first_order"):
        res[f"iteration_s_{fisher}"] = iteration_seconds(fisher, args.repeats, device)
    cuda = device.type == "cuda"
    res.update({f"cuda_max_mib_{f}": v for f, v in CUDA_MAX_MIB.items()})
    lines = [
        "| learner.fisher | meta-iteration s | Fisher-vector product s |"
        + (" CUDA max MiB (meta-iteration) |" if cuda else ""),
        "| --- | ---: | ---: |" + (" ---: |" if cuda else ""),
        *(
            f"| {f} | {res[f'iteration_s_{f}']:.2f} | {res[f'product_s_{f}']:.3f} |"
            + (f" {mib(CUDA_MAX_MIB.get(f))} |" if cuda else "")
            for f in ("exact", "first_order")
        ),
        "",
        f"speed-up: meta-iteration {res['iteration_s_exact'] / res['iteration_s_first_order']:.1f}x,"
        f" product {res['product_s_exact'] / res['product_s_first_order']:.1f}x; cosine of the"
        f" two products {res['cosine']:.4f} ({args.threads} thread(s), medians of"
        f" {args.repeats})",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = "python " + " ".join(sys.argv)
        args.out.write_text(json.dumps({"command": command, **res}, indent=2))
        args.out.with_suffix(".md").write_text(f"`{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
