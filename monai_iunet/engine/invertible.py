"""The composite that applies invertible modules in sequence, and the check that a module keeps the protocol.

The protocol itself, :class:`~monai_iunet.engine.protocol.Invertible` (``forward(x)`` and ``inverse(y)``), lives in
:mod:`monai_iunet.engine.protocol` and is re-exported here.
"""

from __future__ import annotations

import torch
from torch import nn

from monai_iunet.engine.backprop import reconstruct
from monai_iunet.engine.protocol import Invertible

__all__ = ["Invertible", "InvertibleSequence", "NoInverseError", "check_invertible"]


class NoInverseError(TypeError):
    """A module given where an invertible one is needed has no ``inverse``."""


def check_invertible(module: object, what: str = "module") -> Invertible:
    """Return ``module`` if it is an ``nn.Module`` keeping the :class:`Invertible` protocol; raise
    :class:`NoInverseError` naming it otherwise."""
    if not isinstance(module, nn.Module) or not isinstance(module, Invertible):
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
