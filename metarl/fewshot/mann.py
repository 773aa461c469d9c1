"""Memory-augmented neural network (MANN, Santoro et al. 2016) and its black-box baseline.

A task is one sequence: the `ways * shots` support items of an episode in a random order,
each step showing the image `x_t` and the label of the *previous* step `y_{t-1}` (a one-hot,
zeros at t = 0); the output at step t predicts `y_t`. Labels are a fresh permutation of the
classes per episode (the sampler's), so the model must bind labels to images within the
sequence. The loss is the cross-entropy at every step.

`core` picks the recurrent part:
- `memory`: `metarl.memory.MemoryCore`, an LSTM controller with content-based reads and
  least-recently-used writes (the module the memory-augmented policy of `agents` uses);
- `lstm` / `gru`: a plain recurrent network over the same inputs (the black-box sequence
  learner of RL², Duan et al. 2016 / Santoro's LSTM baseline), no external memory.

Budget = shots: row `b` of the adaptation curve is the accuracy on the `(b+1)`-th
presentation of a class within the sequence (after `b` earlier labelled examples of it),
Santoro et al.'s "instance" accuracy: row 1 is the 2nd instance, row 4 the 5th, row 9 the 10th.
`adapt(tasks, b)` / `evaluate` read the same quantity on held-out query images instead:
the sequence of the first `b` shots per class, then each query as one more step from the
state it left.

Memory: the sequence may be longer than the memory (least-used slots are recycled), but a
task with more classes than slots is refused: the memory could not hold one slot per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.distributed import batch_rows, clip_grad_norm_
from metarl.errors import UsageError
from metarl.fewshot.episode import Episode
from metarl.memory import MemoryCore, MemoryState
from metarl.seeding import derive_seed, make_generator, seeded


@dataclass
class MANNConfig:
    core: Literal["memory", "lstm", "gru"] = "memory"
    """memory: MANN (controller + external memory); lstm / gru: the black-box baseline."""
    hidden_size: int = 200
    """Units of the controller (memory) or of the recurrent network (lstm / gru)."""
    memory_slots: int = 128
    """Rows of the external memory (Santoro et al.: 128)."""
    memory_width: int = 40
    """Width of a memory row (Santoro et al.: 40)."""
    memory_heads: int = 4
    """Read heads (each also writes with the same key; Santoro et al.: 4)."""
    usage_decay: float = 0.95
    """gamma of the usage weights w^u_t = gamma * w^u_{t-1} + w^r_t + w^w_t."""
    outer_lr: float = 0.001
    """Adam step size."""
    grad_clip: float = 10.0
    """Clip the global gradient norm to this (0: no clipping)."""
    read_before_write: bool = True
    """Memory order of a step: write then read M_t (false, Santoro et al.'s order: the read
    lands on the slot just written, so the next step's write, steered by the previous read
    weights, can add the label that arrives one step late to the slot of the image it belongs
    to), or read M_{t-1} then write (true). The shipped `omniglot_mann_5w` sets false, the
    paper's order, with which its benchmark row was trained (results/fewshot.md, session 9:
    the early plateau ends after about 5,000 updates, as it does for the black-box LSTM at
    about 4,000; read-first was not trained that long, so which order learns faster is not
    measured). The field's default stays true so that run directories written before it load
    with the order their weights were trained in (config.yaml keeps only the keys set)."""


def _as_state(kind: str, state: Any) -> tuple[Tensor, ...]:
    return tuple(state) if kind == "memory" else state


class SequenceClassifier(nn.Module):
    """`forward(x [B, L, D], prev_y [B, L] (int, -1 = none), state) -> (logits [B, L, ways], state)`.

    The step input is `[x_t, one_hot(y_{t-1})]`; the memory core's output
    `[h_t, r_t]` (or the recurrent network's `h_t`) goes through a linear head to `ways` logits.
    """

    def __init__(self, cfg: MANNConfig, input_dim: int, ways: int) -> None:
        super().__init__()
        self.kind, self.ways, self.input_dim = cfg.core, ways, input_dim
        step_in = input_dim + ways
        if cfg.core == "memory":
            self.core: Any = MemoryCore(
                step_in,
                cfg.hidden_size,
                cfg.memory_slots,
                cfg.memory_width,
                cfg.memory_heads,
                "lstm",
                cfg.usage_decay,
                read_before_write=cfg.read_before_write,
            )
            out = self.core.output_size
        else:
            rnn = nn.LSTM if cfg.core == "lstm" else nn.GRU
            self.core = rnn(step_in, cfg.hidden_size, batch_first=True)
            out = cfg.hidden_size
        self.head = nn.Linear(out, ways)

    def initial_state(self, batch: int) -> Any:
        """Empty memory / zero recurrent state for `batch` sequences."""
        if self.kind == "memory":
            return self.core.initial_state(batch)
        p = self.head.weight
        h = torch.zeros(1, batch, self.core.hidden_size, device=p.device, dtype=p.dtype)
        return (h, torch.zeros_like(h)) if self.kind == "lstm" else h

    def forward(self, x: Tensor, prev_y: Tensor, state: Any) -> tuple[Tensor, Any]:
        onehot = F.one_hot(prev_y.clamp(min=0), self.ways).to(x.dtype)
        inp = torch.cat([x, onehot * (prev_y >= 0).unsqueeze(-1).to(x.dtype)], dim=-1)
        if self.kind == "memory":
            outs = []
            for t in range(inp.shape[1]):
                out, state = self.core(inp[:, t], state)
                outs.append(out)
            feats = torch.stack(outs, dim=1)
        else:
            feats, state = self.core(inp, state)
        return self.head(feats), state

    def expand_state(self, state: Any, copies: int) -> Any:
        """Each sequence's state repeated `copies` times (row b -> rows b*copies..): queries."""
        if self.kind == "memory":
            return MemoryState(*(s.repeat_interleave(copies, 0) for s in state))
        if self.kind == "lstm":
            return tuple(s.repeat_interleave(copies, 1) for s in state)
        return state.repeat_interleave(copies, 1)


def instance_numbers(labels: Tensor, ways: int) -> Tensor:
    """How many earlier items of the same class each position has: `[B, L]` -> `[B, L]`."""
    onehot = F.one_hot(labels, ways)
    before = onehot.cumsum(dim=1) - onehot
    return (before * onehot).sum(-1)


class MANN:
    """Sequence few-shot learner (MANN or black-box LSTM/GRU); `budget` is shots seen."""

    metric, higher_is_better, budget_name = "accuracy", True, "shots"
    distributed = True  # draws every sequence order of the batch, keeps its rows' (batch_rows)
    headline_budget = 1  # the 2nd instance: the first prediction with a labelled example

    def __init__(self, cfg: MANNConfig, model: SequenceClassifier, device: torch.device, seed: int):
        self.cfg, self.model, self.seed = cfg, model.to(device), seed
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.outer_lr)
        self.train_generator = make_generator(seed, "mann/train", device)
        self.eval_generator = make_generator(seed, "mann/eval", device)

    # -- sequences ---------------------------------------------------------------------------
    def _sequence(
        self, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Shuffle each task's items: x `[T, S, C, H, W]`, y `[T, S]` -> flat x `[T, S, D]`,
        y `[T, S]` and the previous labels `[T, S]` (-1 at the first step)."""
        t, s = y.shape
        # the orders of the whole batch being computed (under torchrun: of every rank), so a
        # shard of the tasks gets the orders one process gives them
        rows, total = batch_rows(t)
        order = torch.rand(total, s, generator=generator, device=y.device)[rows].argsort(-1)
        x = x.reshape(t, s, -1).gather(1, order.unsqueeze(-1).expand(t, s, x[0, 0].numel()))
        y = y.gather(1, order)
        prev = torch.cat([torch.full_like(y[:, :1], -1), y[:, :-1]], dim=1)
        return x, y, prev

    def _check(self, ways: int, shots: int) -> None:
        if ways > self.model.ways:
            raise UsageError(
                f"this {self.cfg.core} sequence learner has {self.model.ways} outputs, too few "
                f"for {ways}-way tasks; train one with task.ways={ways}"
            )
        if shots < 1:
            raise UsageError(
                f"a sequence of {ways} x {shots} items shows some class no time; the sequence "
                "learner needs task.shots >= 1 (one presentation per class at least)"
            )

    # -- learner contract --------------------------------------------------------------------
    def meta_step(self, tasks: Episode) -> dict[str, float]:
        """One Adam step on the mean per-step cross-entropy of `T` shuffled sequences."""
        self._check(tasks.ways, tasks.shots)
        self.model.train()
        x, y, prev = self._sequence(tasks.support_x, tasks.support_y, self.train_generator)
        logits, _ = self.model(x, prev, self.model.initial_state(x.shape[0]))
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)  # the global norm
        self.optimizer.step()
        acc = (logits.detach().argmax(-1) == y).float().mean()
        return {"loss": loss.item(), "accuracy": acc.item()}

    def _run_support(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Any, Tensor]:
        """State after the shuffled support `[T, S, ...]`, and each sequence's last label `[T]`."""
        t = y.shape[0]
        state = self.model.initial_state(t)
        if y.shape[1] == 0:
            return state, torch.full((t,), -1, dtype=torch.long, device=y.device)
        x, y, prev = self._sequence(x, y, generator)
        _, state = self.model(x, prev, state)
        return state, y[:, -1]

    def _query_logits(self, state: Any, last: Tensor, query_x: Tensor) -> Tensor:
        """Each query `[T, Q, ...]` as one more step from the support's state: `[T, Q, ways]`."""
        t, q = query_x.shape[:2]
        state = self.model.expand_state(state, q)
        prev = last.repeat_interleave(q).view(t * q, 1)
        logits, _ = self.model(query_x.reshape(t * q, 1, -1), prev, state)
        return logits.view(t, q, -1)

    def adapt(self, tasks: Episode, budget: int) -> tuple[Any, Tensor]:
        """Read the first `budget` shots per class (in a random order) into the state."""
        self._check(tasks.ways, max(tasks.shots, 1))
        x, y = tasks.first_shots(min(budget, tasks.shots))
        self.model.eval()
        with torch.no_grad():
            return self._run_support(x, y, self.eval_generator)

    def evaluate(self, adapted: tuple[Any, Tensor], tasks: Episode) -> Tensor:
        with torch.no_grad():
            logits = self._query_logits(*adapted, tasks.query_x)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

    def adaptation_curve(self, tasks: Episode, max_budget: int) -> Tensor:
        """Accuracy at the 1st..(B+1)-th instance of a class in the sequence: `[B + 1, T]`."""
        self._check(tasks.ways, tasks.shots)
        self.model.eval()
        with torch.no_grad():
            x, y, prev = self._sequence(tasks.support_x, tasks.support_y, self.eval_generator)
            logits, _ = self.model(x, prev, self.model.initial_state(x.shape[0]))
        correct = (logits.argmax(-1) == y).float()
        inst = instance_numbers(y, tasks.ways)
        rows = [
            (correct * (inst == k)).sum(-1) / (inst == k).sum(-1)
            for k in range(min(max_budget, tasks.shots - 1) + 1)
        ]
        return torch.stack(rows)

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Class probabilities `[Q, ways]` of `query_x` `[Q, C, H, W]` after reading the support
        `[S, C, H, W]`, labels `[S]` in 0..ways-1 (shuffled with a generator fixed by the run seed,
        so the answer does not depend on what ran before)."""
        self._check(ways, 1)
        if support_y.numel() and (support_y.min() < 0 or support_y.max() >= ways):
            raise UsageError(f"support labels must lie in 0..{ways - 1}")
        gen = torch.Generator(device=support_x.device)
        gen.manual_seed(derive_seed(self.seed, "mann/predict"))
        self.model.eval()
        with torch.no_grad():
            state, last = self._run_support(support_x[None], support_y[None], gen)
            logits = self._query_logits(state, last, query_x[None])[0]
        return logits[:, :ways].softmax(-1)

    def load_model(self, state: dict[str, Any]) -> None:
        """Only the network of a checkpoint's learner state (`metarl adapt`)."""
        self.model.load_state_dict(state["model"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": {
                "train": self.train_generator.get_state(),
                "eval": self.eval_generator.get_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])


def build_mann(cfg: MANNConfig, distribution: Any, device: torch.device, seed: int) -> MANN:
    shape = tuple(distribution.input_shape)
    if getattr(distribution, "loss", "cross_entropy") != "cross_entropy" or len(shape) != 3:
        raise UsageError(
            "learner.kind mann needs an image classification task (omniglot or image_folder)"
        )
    ways = distribution.ways
    if distribution.train_ways > ways:
        raise UsageError(
            f"learner.kind mann has one output per class of task.ways={ways}; task.train_ways "
            f"({distribution.train_ways}) may not exceed it"
        )
    for name, shots in (
        ("task.shots", distribution.shots),
        ("task.train_shots", distribution.train_shots),
    ):
        if shots < 1:
            raise UsageError(
                f"{name}={shots}: a sequence needs at least one presentation per class; set it >= 1"
            )
    if cfg.core == "memory" and ways > cfg.memory_slots:
        raise UsageError(
            f"task.ways={ways} is more than learner.memory_slots={cfg.memory_slots}: the memory "
            "cannot keep one slot per class (least-used slots would be overwritten); raise "
            "memory_slots"
        )
    if cfg.hidden_size < 1 or cfg.memory_width < 1 or cfg.memory_heads < 1:
        raise UsageError("learner.hidden_size, memory_width and memory_heads must be >= 1")
    with seeded(seed, "model"):
        model = SequenceClassifier(cfg, int(torch.tensor(shape).prod()), ways)
    return MANN(cfg, model, device, seed)
