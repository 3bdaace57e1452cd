"""A 3D convolution that keeps the large temporary buffers of PyTorch's CPU kernels out of a training step.

Two CPU kernels of PyTorch allocate far more than the convolution's input and output:

- for a batch of one small 3D volume (``N * C * D * H <=`` :data:`NATIVE_CONV_LIMIT`), PyTorch picks its native
  convolution, which unfolds the whole volume into a ``C * k³ × D * H * W`` buffer: 56 MiB for 16 channels at 32³,
  far more than the activations themselves. Splitting the volume along depth into two overlapping slabs and
  stacking them as a batch of two makes PyTorch choose oneDNN instead, which needs no such buffer;
- oneDNN, given tensors in PyTorch's default (channels-first) layout, copies them into its own blocked layout and
  back: two extra activations during a forward and three during a backward (24 MiB for the 8-channel half of a
  16-channel coupling at 64³, the largest temporary of a memory-efficient training step). In the channels-last
  layout it works on the tensors as they are. The convolution therefore runs channels-last for the larger
  volumes, in two places: without a graph (the memory-efficient engine's forward and inverse), on a channels-last
  copy of its input that lives only during the call; and inside the engine's recompute in backward
  (:func:`monai_iunet.engine.recomputing`), as :class:`_ChannelsLastConv3d`, which saves the input as it came and
  makes the channels-last copy again in its backward, rather than keeping a copy for the whole backward step as
  autograd would. Elsewhere (ordinary autograd, ``torch.func`` transforms, double backward) the convolution is
  PyTorch's own.

The result is the same convolution in every case (up to float32 round-off of a different kernel); its output is in
the channels-last layout when that layout was used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from monai_iunet.engine.recompute import recomputing

__all__ = ["NATIVE_CONV_LIMIT", "Conv3dLowMemory"]

# PyTorch uses its native (im2col) CPU kernel when the batch is 1 and N * C * D * H is at most this.
NATIVE_CONV_LIMIT = 20480

_CHANNELS_LAST = torch.channels_last_3d

#: whether this torch build has oneDNN (fixed for the process; ``torch.compile`` cannot trace the runtime check)
_ONEDNN_BUILT = torch.backends.mkldnn.is_available()


class _ChannelsLastConv3d(torch.autograd.Function):
    """``conv3d(x, weight, bias)`` computed channels-last, saving ``x`` as it came (no channels-last copy kept).

    Only for the engine's recompute: its backward is not differentiable twice and it has no ``torch.func`` rules,
    both of which the engine refuses before it recomputes.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding, groups):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups, ctx.has_bias = list(padding), groups, bias is not None
        return F.conv3d(x.contiguous(memory_format=_CHANNELS_LAST), weight, bias, 1, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=_CHANNELS_LAST),
            x.contiguous(memory_format=_CHANNELS_LAST),
            weight,
            [weight.shape[0]] if ctx.has_bias else None,
            [1, 1, 1],
            ctx.padding,
            [1, 1, 1],
            False,
            [0, 0, 0],
            ctx.groups,
            mask,
        )
        return grad_x, grad_w, grad_b, None, None


class Conv3dLowMemory(nn.Conv3d):
    """``nn.Conv3d`` (stride 1, zero "same" padding) that avoids the CPU kernels' full-volume temporary buffers.

    Same parameters, state dict and result as ``nn.Conv3d``; only the CPU kernel and memory layout PyTorch works
    in differ (see the module docstring).
    """

    def _plain(self, x: torch.Tensor) -> bool:
        """Whether ``x`` is a float32 CPU volume and this a stride-1 zero-padded convolution (the cases handled)."""
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and x.dim() == 5
            and self.stride == (1, 1, 1)
            and self.dilation == (1, 1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and not torch.jit.is_tracing()
        )

    def _uses_native_kernel(self, x: torch.Tensor) -> bool:
        return (
            self._plain(x)
            and x.shape[0] == 1
            and x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] <= NATIVE_CONV_LIMIT
            and x.shape[2] >= 2
        )

    def _channels_last(self, x: torch.Tensor) -> bool:
        """Whether to run channels-last: oneDNN takes the volume (not the native kernel), and no graph is recorded
        or the engine is recomputing."""
        if not (self._plain(x) and not self._uses_native_kernel(x) and (not torch.is_grad_enabled() or recomputing())):
            return False
        if torch.compiler.is_compiling():  # oneDNN's runtime switch breaks the graph: the build decides
            return _ONEDNN_BUILT
        return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch: an exported model is a plain Conv3d
            return self._conv_forward(x, self.weight, self.bias)
        if self._channels_last(x):
            if not torch.is_grad_enabled():
                return self._conv_forward(x.contiguous(memory_format=_CHANNELS_LAST), self.weight, self.bias)
            return _ChannelsLastConv3d.apply(x, self.weight, self.bias, self.padding, self.groups)
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
