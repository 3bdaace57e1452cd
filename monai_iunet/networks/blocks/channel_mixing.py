"""Invertible channel mixing: an orthogonal 1x1 convolution (identity at initialisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from monai_iunet.networks.blocks.orthogonal import orthogonal_matrix
from monai_iunet.networks.enums import OrthogonalMethod, resolve_option

__all__ = ["InvertibleChannelMixing"]


class InvertibleChannelMixing(nn.Module):
    """Orthogonal 1×1 convolution mixing the channels (identity at initialisation).

    The weight is ``orthogonal_matrix(theta, method)`` with ``theta`` of shape ``(channels, channels)`` starting
    at zero; the inverse is the convolution with the transposed matrix.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        channels: number of channels.
        method: an :class:`~monai_iunet.networks.enums.OrthogonalMethod` or its value, ``"exp"`` or ``"cayley"``,
            see :func:`~monai_iunet.networks.blocks.orthogonal_matrix`.

    Shapes:
        ``forward``/``inverse``: ``(N, channels, *S)`` → ``(N, channels, *S)``.

    Raises:
        ValueError: for an unknown ``method`` (the message lists the methods), ``spatial_dims`` or ``channels``.

    Examples::

        >>> mix = InvertibleChannelMixing(spatial_dims=3, channels=6, method="cayley")
        >>> x = torch.randn(1, 6, 4, 4, 4)
        >>> torch.allclose(mix.inverse(mix(x)), x, atol=1e-6)
        True
    """

    def __init__(self, spatial_dims: int, channels: int, method: OrthogonalMethod | str = OrthogonalMethod.EXP) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if int(channels) < 1:
            raise ValueError(f"channels must be a positive int, got {channels}.")
        self.spatial_dims = spatial_dims
        self.channels = int(channels)
        self.method = resolve_option(method, OrthogonalMethod, "method")
        self.theta = nn.Parameter(torch.zeros(self.channels, self.channels))
        self.register_buffer("frozen_matrix", None, persistent=False)

    def freeze(self) -> None:
        """Store the current orthogonal matrix as a constant (for export: ONNX has no matrix exponential)."""
        with torch.no_grad():
            self.frozen_matrix = orthogonal_matrix(self.theta, self.method)

    def matrix(self) -> torch.Tensor:
        """The orthogonal ``(channels, channels)`` weight: the frozen one after :meth:`freeze`."""
        frozen = self.frozen_matrix
        if frozen is not None:
            return frozen
        if torch.jit.is_scripting():  # TorchScript compiles only this branch
            raise RuntimeError("only a frozen channel mixing can be scripted: script IUNet.for_export().")
        else:
            return orthogonal_matrix(self.theta, self.method)

    def _mix(self, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # an exported model runs without autocast
            matrix = matrix.to(x.dtype)
        else:
            # under autocast the convolution runs in the autocast dtype anyway; outside it, follow the input
            matrix = matrix if torch.is_autocast_enabled(x.device.type) else matrix.to(x.dtype)
        weight = matrix
        for _ in range(self.spatial_dims):  # (channels, channels, 1, ..., 1), spelled out for TorchScript
            weight = weight.unsqueeze(-1)
        if self.spatial_dims == 1:
            return F.conv1d(x, weight)
        if self.spatial_dims == 2:
            return F.conv2d(x, weight)
        return F.conv3d(x, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix the channels of ``x`` of shape ``(N, channels, *S)``."""
        return self._mix(x, self.matrix())

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward` (the transposed orthogonal matrix)."""
        return self._mix(y, self.matrix().transpose(0, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, method='{self.method}', frozen={self.frozen_matrix is not None}"
