"""A 3D convolution that avoids PyTorch's full-volume im2col buffer for single volumes on CPU.

For a batch of one small 3D volume (``N * C * D * H <=`` :data:`NATIVE_CONV_LIMIT`), PyTorch's CPU backend picks
its native convolution, which unfolds the whole volume into a ``C * k³ × D * H * W`` buffer: 56 MiB for 16 channels at
32³, far more than the activations themselves and the largest single allocation of an iUNet training step.
Splitting the volume along depth into two overlapping slabs and stacking them as a batch of two makes
PyTorch choose oneDNN instead, which needs no such buffer. The result is the same convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NATIVE_CONV_LIMIT", "Conv3dLowMemory"]

# PyTorch uses its native (im2col) CPU kernel when the batch is 1 and N * C * D * H is at most this.
NATIVE_CONV_LIMIT = 20480


class Conv3dLowMemory(nn.Conv3d):
    """``nn.Conv3d`` (stride 1, zero "same" padding) that runs single CPU volumes as two depth slabs.

    Same parameters, state dict and result as ``nn.Conv3d``; only the CPU kernel PyTorch selects differs.
    """

    def _uses_native_kernel(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and x.dim() == 5
            and x.shape[0] == 1
            and x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] <= NATIVE_CONV_LIMIT
            and x.shape[2] >= 2
            and self.stride == (1, 1, 1)
            and self.dilation == (1, 1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and not torch.jit.is_tracing()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch: an exported model is a plain Conv3d
            return self._conv_forward(x, self.weight, self.bias)
        if not self._uses_native_kernel(x):
            return super().forward(x)
        depth, pad_d = x.shape[2], self.padding[0]
        halo = self.kernel_size[0] - 1
        half = (depth + 1) // 2
        # zero-pad depth ("same" padding, plus one plane if the depth is odd), then cut two overlapping slabs
        padded = F.pad(x, (0, 0, 0, 0, pad_d, halo - pad_d + 2 * half - depth))
        slabs = torch.cat([padded[:, :, : half + halo], padded[:, :, half : 2 * half + halo]], dim=0)
        out = F.conv3d(slabs, self.weight, self.bias, 1, (0, *self.padding[1:]), 1, self.groups)
        return torch.cat([out[:1], out[1:]], dim=2)[:, :, :depth]
