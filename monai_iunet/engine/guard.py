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

    def check(self, reference: torch.Tensor, reconstructed: torch.Tensor, output_finite: bool | None = None) -> float:
        """Record the relative error of ``reconstructed`` against ``reference``, warn or raise if too large.

        Args:
            reference: the true input of the memory-efficient region.
            reconstructed: the engine's reconstruction of it.
            output_finite: whether the region's output was finite (``None``: not known). A non-finite input or
                output is reported as such, not as a reconstruction error.
        """
        ref = reference.detach().double()
        error = ((reconstructed.detach().double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()
        self.errors.append(error)
        if error <= self.tolerance:  # NaN fails this test too
            return error
        if not bool(torch.isfinite(ref).all()):
            message = (
                "the input of the memory-efficient region (the invertible core) was not finite (NaN or inf), so "
                "its output and gradients are not finite either; check the data and the layers before the core "
                "(the reconstruction itself is not at fault)."
            )
        elif output_finite is False:
            message = (
                "the forward pass of the memory-efficient region (the invertible core) produced non-finite values "
                "(NaN or inf) from a finite input: the weights have diverged or the activations overflowed; lower "
                "the learning rate, train in float32 (no float16 autocast), or clip gradients."
            )
        else:
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
