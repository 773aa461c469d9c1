"""Tasks are data: one base for every batch of meta-RL tasks.

A task batch is a frozen dataclass whose fields are tensors with a leading task axis `T`
(arm probabilities `[T, k]`, goals `[T, 2]`, slope angles `[T]`, terrain profiles
`[T, K]`, ...). `TaskBatch` gives every such dataclass the one way to slice, move and
flatten it, so samplers, learners and envs never need to know which family they hold:

    tasks.select(0)          # task 0 alone, keeping the task axis (T = 1)
    tasks.select(idx)        # a slice or an index tensor
    tasks.to("cuda")         # every field on another device
    tasks.features()         # [T, P] float32: every field flattened (the oracle's input)
    len(tasks) == tasks.num_tasks

Families validate their fields in `__post_init__`, so a batch that exists is a valid one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch

from metarl.errors import UsageError

_T = TypeVar("_T", bound="TaskBatch")


class TaskBatch:
    """Mixin for frozen dataclasses of tensors with a leading task axis `T`."""

    def _fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    @property
    def num_tasks(self) -> int:
        return int(getattr(self, self._fields()[0]).shape[0])

    def __len__(self) -> int:
        return self.num_tasks

    @property
    def device(self) -> torch.device:
        return getattr(self, self._fields()[0]).device

    def to(self: _T, device: torch.device | str) -> _T:
        """The same tasks with every tensor on `device`: `self` when they are all there
        already (no copy and no second validation, which would wait for a GPU)."""
        values = {k: getattr(self, k).to(device) for k in self._fields()}
        if all(v is getattr(self, k) for k, v in values.items()):
            return self
        return dataclasses.replace(self, **values)  # type: ignore[type-var]

    def select(self: _T, index: int | slice | torch.Tensor) -> _T:
        """A sub-batch: an int (negative counts from the end) keeps the task axis (`T = 1`);
        a slice or an index tensor selects several tasks."""
        if isinstance(index, int):
            n = self.num_tasks
            if not -n <= index < n:
                raise UsageError(f"task index {index} out of range [0, {n})")
            index = slice(index % n, index % n + 1)
        values = {k: getattr(self, k)[index] for k in self._fields()}
        return dataclasses.replace(self, **values)  # type: ignore[type-var]

    def features(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Every field flattened per task, in declaration order: `[T, P]` of `dtype`."""
        n = self.num_tasks
        return torch.cat([getattr(self, k).reshape(n, -1).to(dtype) for k in self._fields()], 1)


def check_task_batch(value: Any, task_type: type[TaskBatch], num_tasks: int | None = None) -> None:
    """One-line `UsageError` unless `value` is a `task_type` batch of `num_tasks` tasks."""
    if not isinstance(value, task_type):
        raise UsageError(
            f"options['tasks']: expected a {task_type.__name__}, got {type(value).__name__}"
        )
    if num_tasks is not None and value.num_tasks != num_tasks:
        raise UsageError(
            f"options['tasks']: expected {num_tasks} tasks (num_envs / envs_per_task), "
            f"got {value.num_tasks}"
        )
