"""External memory with content-based reads and least-recently-used writes (Santoro et al. 2016).

Shared by the MANN few-shot classifier and the memory-augmented policy (`agents.policies`).
Everything is batched over a leading axis `B` and functional: the memory and its usage travel
in an explicit state, so a step is `state -> state` with no hidden buffers, and
`torch.func.functional_call` works on `MemoryCore` like on any module.

One step of `MemoryCore` (notation of the paper, `H` heads, `N` slots, `W` width):
    controller(x_t, r_{t-1}) -> h_t -> per head: key k_t, key strength beta_t, write gate alpha_t
    w^w_t  = sigmoid(alpha_t) * w^r_{t-1} + (1 - sigmoid(alpha_t)) * w^lu_{t-1}
    M_t    = M_{t-1} with the least-used slots of step t-1 zeroed, plus sum_h w^w_t[h]^T k_t[h]
    w^r_t  = softmax_i(beta_t * cos(k_t, M_t[i]))
    r_t    = w^r_t M_t
    w^u_t  = gamma * w^u_{t-1} + sum_h (w^r_t + w^w_t)
    w^lu_t = one-hot of the h-th least-used slot for head h (distinct slots per head)
The paper uses the same key to write and to read; we do too. The least-used weights are
discrete (no gradient flows through the choice of slot), everything else is differentiable.

`read_before_write=True` reads `M_{t-1}` (weights and values) before step t's write instead:
retrieve, then store. The order above (the module's default, the paper's) is what lets a classifier
bind a label to its image: the label of step t arrives with step t + 1's input, and step
t + 1's write goes (through the gate) where step t read, which in this order is the slot
step t has just filled. The shipped MANN config uses it (2nd instance 72% on Omniglot after
14,400 updates, results/fewshot.md; read-first was not trained as long, so no measured
comparison of the two orders exists); the memory-augmented policy was tuned with it too.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.errors import UsageError

_EPS = 1e-8
MEMORY_INIT = 1e-6  # a small constant, so cosine similarity with an empty memory is defined


class MemoryState(NamedTuple):
    """State of `MemoryCore` for a batch of `B` sequences (a NamedTuple, so a pytree).

    h: `[B, hidden]` controller output; c: `[B, hidden]` LSTM cell (zeros, unused, for GRU);
    memory: `[B, slots, width]`; usage: `[B, slots]`; read_weights: `[B, heads, slots]`;
    reads: `[B, heads, width]` (the read vectors of the last step, fed back to the controller).
    """

    h: Tensor
    c: Tensor
    memory: Tensor
    usage: Tensor
    read_weights: Tensor
    reads: Tensor


def content_weights(memory: Tensor, keys: Tensor, strength: Tensor) -> Tensor:
    """Content-based addressing: softmax over slots of `strength * cos(key, slot)`.

    memory `[B, N, W]`, keys `[B, H, W]`, strength `[B, H]` (>= 0; larger = sharper).
    Returns weights `[B, H, N]`, each row summing to 1.
    """
    sim = torch.einsum(
        "bhw,bnw->bhn", F.normalize(keys, dim=-1, eps=_EPS), F.normalize(memory, dim=-1, eps=_EPS)
    )
    return torch.softmax(strength.unsqueeze(-1) * sim, dim=-1)


def read_memory(memory: Tensor, weights: Tensor) -> Tensor:
    """Weighted read: memory `[B, N, W]`, weights `[B, H, N]` -> read vectors `[B, H, W]`."""
    return torch.einsum("bhn,bnw->bhw", weights, memory)


def least_used_weights(usage: Tensor, heads: int) -> Tensor:
    """One-hot weights `[B, heads, N]` on the `heads` least-used slots, head h on the h-th.

    usage `[B, N]`. Ties go to the lower slot index (a stable sort), so the choice is
    deterministic: with all-zero usage, head h takes slot h.
    """
    order = torch.sort(usage, dim=-1, stable=True).indices[:, :heads]  # [B, heads]
    return F.one_hot(order, usage.shape[-1]).to(usage.dtype)


def lru_write(
    memory: Tensor, usage: Tensor, prev_read_weights: Tensor, keys: Tensor, gate: Tensor
) -> tuple[Tensor, Tensor]:
    """Least-recently-used write of `keys` (Santoro et al. 2016, eq. 7-8).

    memory `[B, N, W]`, usage `[B, N]` (of the previous step), prev_read_weights `[B, H, N]`,
    keys `[B, H, W]`, gate `[B, H]` (the logit alpha). The least-used slots (by `usage`) are
    zeroed before the write, so a fresh key replaces stale content instead of adding to it.
    Returns `(new_memory [B, N, W], write_weights [B, H, N])`.
    """
    lu = least_used_weights(usage, keys.shape[1])
    g = torch.sigmoid(gate).unsqueeze(-1)
    write_w = g * prev_read_weights + (1 - g) * lu
    keep = 1 - lu.amax(dim=1)  # [B, N]: 0 on slots that are about to be recycled
    memory = memory * keep.unsqueeze(-1) + torch.einsum("bhn,bhw->bnw", write_w, keys)
    return memory, write_w


class MemoryCore(nn.Module):
    """A recurrent controller (LSTM or GRU) reading and writing an external memory.

    `forward(x [B, input_size], state) -> (out [B, output_size], state)` where
    `out = [h_t, r_t[0], ..., r_t[H-1]]` and `output_size = hidden_size + heads * width`.
    The controller sees the input and the previous step's read vectors.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        slots: int = 128,
        width: int = 40,
        heads: int = 4,
        controller: Literal["lstm", "gru"] = "lstm",
        gamma: float = 0.95,
        read_before_write: bool = False,
    ) -> None:
        super().__init__()
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("slots", slots),
            ("width", width),
            ("heads", heads),
        ):
            if v < 1:
                raise UsageError(f"MemoryCore {name} must be >= 1, got {v}")
        if heads > slots:
            raise UsageError(f"MemoryCore needs heads <= slots, got heads={heads}, slots={slots}")
        if controller not in ("lstm", "gru"):
            raise UsageError(f"MemoryCore controller must be 'lstm' or 'gru', got {controller!r}")
        if not 0.0 <= gamma <= 1.0:
            raise UsageError(f"MemoryCore usage decay gamma must be in [0, 1], got {gamma}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.slots, self.width, self.heads = slots, width, heads
        self.controller_kind, self.gamma = controller, gamma
        self.read_before_write = read_before_write
        cell = nn.LSTMCell if controller == "lstm" else nn.GRUCell
        self.controller = cell(input_size + heads * width, hidden_size)
        # per head: key (W), key strength (1), write gate (1)
        self.interface = nn.Linear(hidden_size, heads * (width + 2))

    @property
    def output_size(self) -> int:
        return self.hidden_size + self.heads * self.width

    def initial_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> MemoryState:
        """The state at the start of a sequence (a trial): empty memory, zero usage."""
        p = self.interface.weight
        b, n, w, h = batch_size, self.slots, self.width, self.heads
        kw: dict[str, Any] = {"device": device or p.device, "dtype": dtype or p.dtype}
        return MemoryState(
            h=torch.zeros(b, self.hidden_size, **kw),
            c=torch.zeros(b, self.hidden_size, **kw),
            memory=torch.full((b, n, w), MEMORY_INIT, **kw),
            usage=torch.zeros(b, n, **kw),
            read_weights=torch.zeros(b, h, n, **kw),
            reads=torch.zeros(b, h, w, **kw),
        )

    def reset(self, state: MemoryState, mask: Tensor) -> MemoryState:
        """Rows of `state` where `mask` `[B]` (bool) is true go back to the initial state.

        Out of place (`torch.where`), so it is safe inside autograd and on shared tensors.
        """
        init = self.initial_state(mask.shape[0], mask.device, state.h.dtype)
        return MemoryState(
            *(
                torch.where(mask.view(-1, *([1] * (s.dim() - 1))), i, s)
                for s, i in zip(state, init, strict=True)
            )
        )

    def forward(self, x: Tensor, state: MemoryState) -> tuple[Tensor, MemoryState]:
        b = x.shape[0]
        ctrl_in = torch.cat([x, state.reads.reshape(b, -1)], dim=-1)
        if self.controller_kind == "lstm":
            h, c = self.controller(ctrl_in, (state.h, state.c))
        else:
            h = self.controller(ctrl_in, state.h)
            c = state.c
        iface = self.interface(h).view(b, self.heads, self.width + 2)
        keys = torch.tanh(iface[..., : self.width])
        strength = 1 + F.softplus(iface[..., self.width])  # >= 1: reads at least as sharp
        gate = iface[..., self.width + 1]
        if self.read_before_write:
            read_w = content_weights(state.memory, keys, strength)
            reads = read_memory(state.memory, read_w)
        memory, write_w = lru_write(state.memory, state.usage, state.read_weights, keys, gate)
        if not self.read_before_write:
            read_w = content_weights(memory, keys, strength)
            reads = read_memory(memory, read_w)
        usage = self.gamma * state.usage + (read_w + write_w).sum(dim=1)
        out = torch.cat([h, reads.reshape(b, -1)], dim=-1)
        return out, MemoryState(h, c, memory, usage, read_w, reads)
