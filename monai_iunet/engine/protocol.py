"""The invertible protocol the engine knows: a module with ``forward(x)`` and ``inverse(y)``.

An invertible module is an ``nn.Module`` with ``forward(x)`` and ``inverse(y)``; nothing else is required. It may
also define ``reconstruct(y, grad_y, grads) -> (x, grad_x)`` to refine the engine's backward step
(:func:`monai_iunet.engine.backprop.reconstruct`). The protocol is runtime-checkable:
``isinstance(module, Invertible)`` is how the engine, the RNG recording and the memcnn adapter find invertible
modules.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["Invertible"]


@runtime_checkable
class Invertible(Protocol):
    """What the engine needs of a module: a forward map and its inverse, both tensor to tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def inverse(self, y: torch.Tensor) -> torch.Tensor: ...
