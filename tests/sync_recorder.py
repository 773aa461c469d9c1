"""Count the calls that would make the host wait for a GPU, on any device (a CPU test).

`HostSyncRecorder` is a `torch.overrides.TorchFunctionMode`: every torch function and tensor
method call passes through it, and it records those that copy device data to the host or let
a tensor's value steer Python (`.item()`, `.cpu()`, `.tolist()`, `.numpy()`, `bool()`,
`int()`, `float()`, `__index__`), that give a result whose shape depends on the values
(`nonzero`, `masked_select`, `unique`, indexing with a boolean mask), and host-to-device
copies of Python or numpy data (`torch.tensor`, `torch.as_tensor` of a non-tensor). On CUDA each of these is a stream synchronisation.

Not counted: calls made inside `torch.optim`, whose step counters are host tensors on every
device (Adam without `capturable`), so reading them never waits for the GPU.
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

SYNC_NAMES = frozenset(
    {"item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__"}
    | {"nonzero", "masked_select", "argwhere", "unique", "tensor"}
)
_HOST_SIDE = ("torch/optim/",)


def _bool_mask_index(args: tuple[Any, ...]) -> bool:
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class HostSyncRecorder(TorchFunctionMode):
    """Records `(name, "file:line")` of every host-synchronising call made while active; the
    place is the innermost frame outside torch and contextlib (the code that asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = getattr(func, "__name__", "")
        is_mask = name in ("__getitem__", "__setitem__") and _bool_mask_index(args)
        from_host = name == "as_tensor" and not isinstance(args[0] if args else None, torch.Tensor)
        if name in SYNC_NAMES or is_mask or from_host:
            stack = traceback.extract_stack()[:-1]
            if not any(part in stack[-1].filename for part in _HOST_SIDE):
                ours = [
                    f
                    for f in stack
                    if "/torch/" not in f.filename and "contextlib" not in f.filename
                ]
                site = ours[-1] if ours else stack[-1]
                self.calls.append((name, f"{site.filename}:{site.lineno}"))
        return func(*args, **(kwargs or {}))
