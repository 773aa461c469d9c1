"""Time one second-order MAML meta-iteration (Omniglot 5w1s, 32 tasks) in a fresh process.

`metarl`: the MAML learner's meta_step. `plain`: the textbook per-task loop written inline
(sum every task's query loss, one backward at the end), as in learn2learn-style examples.
Prints one JSON line: implementation, median seconds, peak resident memory (MiB), and on
CUDA (a third argument `cuda`) the CUDA peak memory (MiB).
"""

import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

from metarl.registry import load_config
from metarl.trainer import build_run

impl, repeats = sys.argv[1], int(sys.argv[2])
device = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cpu")
cfg = load_config("omniglot_maml_5w1s", [f"device={device.type}"])
run = build_run(cfg, None)
learner, g = run.learner, torch.Generator(device).manual_seed(0)
batches = [run.distribution.sample("train", 32, g) for _ in range(repeats + 1)]


def plain_step(ep):
    model, opt = learner.model, learner.optimizer
    opt.zero_grad()
    params = dict(model.named_parameters())
    total = 0.0
    for t in range(ep.num_tasks):
        loss = F.cross_entropy(functional_call(model, params, (ep.support_x[t],)), ep.support_y[t])
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        fast = {k: p - 0.4 * gr for (k, p), gr in zip(params.items(), grads, strict=True)}
        total = total + F.cross_entropy(
            functional_call(model, fast, (ep.query_x[t],)), ep.query_y[t]
        )
    (total / ep.num_tasks).backward()
    opt.step()


step = learner.meta_step if impl == "metarl" else plain_step
times = []
cuda = device.type == "cuda"
for i, ep in enumerate(batches):
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step(ep)
    if cuda:
        torch.cuda.synchronize(device)
    if i:  # the first iteration warms up allocators
        times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
row = {"impl": impl, "median_seconds": statistics.median(times), "peak_mib": peak}
if cuda:
    row["cuda_max_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
print(json.dumps(row))
