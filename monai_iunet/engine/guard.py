"""A check of the memory-efficient engine's numerical drift: reconstructed input against the true input."""

from __future__ import annotations

import warnings

import torch

__all__ = ["ReconstructionGuard"]


class ReconstructionGuard:
    """Checks now and then that the engine's reconstructed input matches the true input.

    Memory-efficient gradients are only as accurate as the inverse (Behrmann et al. 2020): ill-conditioned
    blocks or low precision make reconstruction drift. On every ``every``-th memory-efficient forward pass, the
    engine keeps a copy of the input and, in backward, compares the reconstruction with it; a relative error
    (Frobenius norm) above ``tolerance`` warns or raises. The measured errors are kept in :attr:`errors`.

    Args:
        every: check one forward pass in this many (1 checks all; each check stores one extra input copy).
        tolerance: largest acceptable relative reconstruction error.
        action: ``"warn"`` or ``"raise"`` (a ``FloatingPointError``).

    Examples::

        >>> net = IUNet(3, 4, 3, guard=ReconstructionGuard(every=100, tolerance=1e-4))
    """

    def __init__(self, every: int = 100, tolerance: float = 1e-3, action: str = "warn") -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive int, got {every}.")
        if str(action) not in ("warn", "raise"):
            raise ValueError(f"action must be 'warn' or 'raise', got {action!r}.")
        self.every = int(every)
        self.tolerance = float(tolerance)
        self.action = str(action)
        self.calls = 0
        self.errors: list[float] = []

    def due(self) -> bool:
        """Count a forward pass; whether this one is checked."""
        self.calls += 1
        return (self.calls - 1) % self.every == 0

    def check(self, reference: torch.Tensor, reconstructed: torch.Tensor) -> float:
        """Record the relative error of ``reconstructed`` against ``reference``, warn or raise if too large."""
        ref = reference.detach().double()
        error = ((reconstructed.detach().double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()
        self.errors.append(error)
        if not error <= self.tolerance:  # also catches NaN
            message = (
                f"memory-efficient backpropagation reconstructed the invertible core's input with relative error "
                f"{error:.2e} > tolerance {self.tolerance:.1e}, so its gradients are inaccurate: train in float32 "
                "(no autocast), lower the learning rate, or build the network with memory_efficient=False."
            )
            if self.action == "raise":
                raise FloatingPointError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        return error

    def __repr__(self) -> str:
        return f"ReconstructionGuard(every={self.every}, tolerance={self.tolerance}, action={self.action!r})"
