"""Invertible channel mixing: an orthogonal 1x1 convolution (identity at initialisation)."""

from __future__ import annotations

import torch
from torch import nn

from monai_iunet.networks.blocks.orthogonal import orthogonal_matrix

__all__ = ["InvertibleChannelMixing"]


class InvertibleChannelMixing(nn.Module):
    """Orthogonal 1×1 convolution mixing the channels (identity at initialisation).

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of channels.
        method: ``"exp"`` or ``"cayley"``, see :func:`monai_iunet.networks.blocks.orthogonal_matrix`.

    Shapes:
        ``forward``/``inverse``: ``(N, channels, *S)`` → ``(N, channels, *S)``.
    """

    def __init__(self, spatial_dims: int, channels: int, method: str = "exp") -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.method = str(method)
        self.theta = nn.Parameter(torch.zeros(channels, channels))

    def _mix(self, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            matrix = matrix.to(x.dtype)
        conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)
        return conv[self.spatial_dims - 1](x, matrix.reshape(*matrix.shape, *([1] * self.spatial_dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(x, orthogonal_matrix(self.theta, self.method))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._mix(y, orthogonal_matrix(self.theta, self.method).transpose(0, 1))
