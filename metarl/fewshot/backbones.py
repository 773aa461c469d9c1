"""Backbones for few-shot learning.

`conv4`: four blocks of 3x3 conv (64 filters), batch norm, ReLU, 2x2 max-pool (Vinyals et al.
2016; used by Prototypical Networks and MAML). Batch norm has `track_running_stats=False`:
every forward pass normalises with the statistics of its own batch, per task, at training and
test time alike, as in the MAML paper -- no running statistics leak between tasks, and
second-order gradients through it are exact.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def conv4(in_channels: int = 1, conv_channels: int = 64, blocks: int = 4) -> nn.Sequential:
    """Embedding `[B, C, H, W] -> [B, conv_channels * (H // 2**blocks) * (W // 2**blocks)]`."""
    c = conv_channels
    layers = [conv_block(in_channels if i == 0 else c, c) for i in range(blocks)]
    return nn.Sequential(*layers, nn.Flatten())


def embedding_dim(encoder: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return encoder(torch.zeros(2, *input_shape)).shape[-1]


def classifier(
    input_shape: tuple[int, int, int], ways: int, conv_channels: int = 64
) -> nn.Sequential:
    """conv4 followed by a linear head to `ways` logits (MAML's classifier)."""
    encoder = conv4(input_shape[0], conv_channels)
    return nn.Sequential(encoder, nn.Linear(embedding_dim(encoder, input_shape), ways))


def mlp(in_dim: int, out_dim: int, hidden_sizes: tuple[int, ...] = (40, 40)) -> nn.Sequential:
    """ReLU MLP (MAML's sinusoid regressor is `mlp(1, 1, (40, 40))`)."""
    dims = (in_dim, *hidden_sizes)
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(dims[-1], out_dim))
