"""Maps from an unconstrained square parameter to special orthogonal matrices.

Both maps take a parameter ``theta`` of shape ``(..., n, n)``, form the skew-symmetric matrix
``S = theta - theta^T`` (paper eq. 4) and map it into SO(n):

- ``"exp"``: the matrix exponential ``exp(S)`` (paper eq. 3), surjective onto SO(n);
- ``"cayley"``: the Cayley transform ``(I - S/2)^{-1} (I + S/2)``, cheaper, all of SO(n) without eigenvalue -1.

Gradients come from PyTorch's own ``torch.linalg.matrix_exp`` and ``torch.linalg.solve`` autograd formulas,
so there is no truncated series and no hand-written Fréchet derivative.
"""

from __future__ import annotations

import torch

from monai_iunet.networks.enums import OrthogonalMethod, resolve_option

__all__ = ["orthogonal_matrix", "skew_symmetric"]


def skew_symmetric(theta: torch.Tensor) -> torch.Tensor:
    """Return ``theta - theta^T`` over the last two dimensions.

    Args:
        theta: tensor of shape ``(..., n, n)``.

    Returns:
        skew-symmetric tensor of the same shape.
    """
    if theta.ndim < 2 or theta.shape[-1] != theta.shape[-2]:
        raise ValueError(f"theta must have shape (..., n, n), got {tuple(theta.shape)}.")
    return theta - theta.transpose(-1, -2)


def orthogonal_matrix(theta: torch.Tensor, method: str | OrthogonalMethod = OrthogonalMethod.EXP) -> torch.Tensor:
    """Map ``theta`` of shape ``(..., n, n)`` to special orthogonal matrices of the same shape.

    Args:
        theta: unconstrained parameter, shape ``(..., n, n)``; only its skew-symmetric part matters,
            so any symmetric ``theta`` gives the identity.
        method: an :class:`OrthogonalMethod` or its value: ``"exp"`` (matrix exponential) or ``"cayley"``
            (Cayley transform).

    Returns:
        orthogonal matrices with determinant one, shape ``(..., n, n)``.

    Raises:
        ValueError: when ``method`` is not an :class:`OrthogonalMethod` (the message lists them).
    """
    method = resolve_option(method, OrthogonalMethod, "method")
    skew = skew_symmetric(theta)
    if method == OrthogonalMethod.EXP:
        return torch.linalg.matrix_exp(skew)
    eye = torch.eye(skew.shape[-1], dtype=skew.dtype, device=skew.device).expand_as(skew)
    return torch.linalg.solve(eye - 0.5 * skew, eye + 0.5 * skew)
