"""The invertible protocol the engine knows, and the composite that applies invertible modules in sequence.

An invertible module is an ``nn.Module`` with ``forward(x)`` and ``inverse(y)``; nothing else is required. It may
also define ``reconstruct(y, grad_y, grads) -> (x, grad_x)`` to refine the engine's backward step
(:func:`monai_iunet.engine.backprop.reconstruct`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from monai_iunet.engine.backprop import reconstruct

__all__ = ["Invertible", "InvertibleSequence", "NoInverseError", "check_invertible"]


@runtime_checkable
class Invertible(Protocol):
    """What the engine needs of a module: a forward map and its inverse, both tensor to tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def inverse(self, y: torch.Tensor) -> torch.Tensor: ...


class NoInverseError(TypeError):
    """A module given where an invertible one is needed has no ``inverse``."""


def check_invertible(module: object, what: str = "module") -> nn.Module:
    """Return ``module`` if it keeps the invertible protocol; raise :class:`NoInverseError` naming it otherwise."""
    if not isinstance(module, nn.Module) or not callable(getattr(module, "inverse", None)):
        raise NoInverseError(
            f"{what} must be an nn.Module with forward(x) and inverse(y), got {type(module).__name__} without "
            "inverse(); define inverse() or wrap the module in an invertible block such as AdditiveCoupling."
        )
    return module


class InvertibleSequence(nn.Sequential):
    """Invertible modules applied one after the other; the inverse applies their inverses in reverse order."""

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for module in reversed(self):
            y = module.inverse(y)
        return y

    def reconstruct(
        self, y: torch.Tensor, grad_y: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for module in reversed(self):
            y, grad_y = reconstruct(module, y, grad_y, grads)
        return y, grad_y
