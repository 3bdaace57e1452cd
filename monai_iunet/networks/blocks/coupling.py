"""Additive coupling blocks acting at one resolution, and the alternating sequence of them a level uses.

Every block is an ``nn.Module`` with ``forward(x)`` and ``inverse(y)`` of the same shape. A block may also define
``reconstruct(y, grad_y, grads)`` (see :mod:`monai_iunet.engine`) to rebuild its input and back-propagate in one
go; :class:`AdditiveCoupling` does so to evaluate its residual function once per backward step, not twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv, split_args
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

from monai_iunet.engine import accumulate_grads, trainable_parameters
from monai_iunet.networks.blocks.channel_mixing import InvertibleChannelMixing
from monai_iunet.networks.blocks.low_memory_conv import Conv3dLowMemory

__all__ = ["DEFAULT_ACT", "DEFAULT_NORM", "AdditiveCoupling", "alternating_couplings", "residual_function"]

DEFAULT_NORM = ("group", {"num_groups": 1})
DEFAULT_ACT = ("leakyrelu", {"negative_slope": 0.01})


def _with_affine(norm: str | tuple) -> tuple:
    """Turn on the affine weight of norms that have it off by default (instance norm) so it can start at zero."""
    name, args = split_args(norm)
    args = dict(args)  # never change the caller's dict
    if str(name).lower() in ("instance", "batch", "instance_nvfuser"):
        args.setdefault("affine", True)
    if str(name).lower() == "group":
        args.setdefault("num_groups", 1)
    return (name, args)


def _inplace_act(act: str | tuple) -> nn.Module:
    """An activation layer, in place where the activation supports it (its input is never needed again)."""
    name, args = split_args(act)
    args = dict(args)  # never change the caller's dict
    if str(name).lower() in ("leakyrelu", "relu", "elu", "relu6"):
        args.setdefault("inplace", True)
    return get_act_layer((name, args))


def residual_function(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    depth: int = 1,
    kernel_size: int = 3,
    norm: str | tuple = DEFAULT_NORM,
    act: str | tuple = DEFAULT_ACT,
) -> nn.Sequential:
    """The coupling's ``F``: ``depth`` times (conv → activation → normalisation), the last norm zero-initialised.

    Because the last normalisation's affine weight and bias start at zero, ``F`` outputs zeros at
    initialisation and the coupling block is the identity (paper §4.1).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the half that ``F`` reads.
        out_channels: channels of the half that ``F`` is added to.
        depth: number of conv–activation–norm units.
        kernel_size: convolution kernel size (odd, "same" padding).
        norm: a MONAI norm name or ``(name, args)``; default layer normalisation (GroupNorm with one group).
        act: a MONAI activation name or ``(name, args)``; default LeakyReLU.
    """
    if depth < 1:
        raise ValueError(f"block depth must be at least 1, got {depth}.")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd to keep the spatial size, got {kernel_size}.")
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(depth):
        conv = Conv3dLowMemory if spatial_dims == 3 else Conv[Conv.CONV, spatial_dims]
        layers += [
            conv(channels, out_channels, kernel_size, padding=kernel_size // 2),
            _inplace_act(act),
            get_norm_layer(_with_affine(norm), spatial_dims, out_channels),
        ]
        channels = out_channels
    last_norm = layers[-1]
    if getattr(last_norm, "weight", None) is None:
        raise ValueError(f"norm {norm!r} has no affine weight to initialise at zero; pass one that has (affine=True).")
    nn.init.zeros_(last_norm.weight)
    nn.init.zeros_(last_norm.bias)
    return nn.Sequential(*layers)


#: whether ``torch.autograd.grad`` takes gradient edges as outputs (torch >= 2.5; checked, not assumed)
_GRAD_FROM_EDGES = "GradientEdge" in str(inspect.signature(torch.autograd.grad).parameters["outputs"].annotation)


def _gradient_edge(out: torch.Tensor):
    """What ``torch.autograd.grad`` back-propagates from: ``out``'s gradient edge, so that ``out`` itself can be
    freed first (``out`` itself if this torch cannot differentiate from an edge)."""
    if not _GRAD_FROM_EDGES or out.grad_fn is None:
        return out
    return torch.autograd.graph.get_gradient_edge(out)


class AdditiveCoupling(nn.Module):
    """Additive coupling on half of the channels: ``y1 = x1 + F(x2), y2 = x2`` (Jacobsen et al. 2018).

    The channels are split into ``x1`` (the first ``channels // 2``) and ``x2``; with ``flip=True`` the roles swap,
    so alternating ``flip`` from block to block lets every channel be updated. The inverse is
    ``x1 = y1 - F(y2)``. The identity at initialisation (see :func:`residual_function`).

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input (= output) channels, at least 2.
        flip: update the second part of the channels from the first instead.
        depth, kernel_size, norm, act: passed to :func:`residual_function`.

    Shapes:
        ``forward``/``inverse``: ``(N, channels, *S)`` → ``(N, channels, *S)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        flip: bool = False,
        depth: int = 1,
        kernel_size: int = 3,
        norm: str | tuple = DEFAULT_NORM,
        act: str | tuple = DEFAULT_ACT,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling block needs at least 2 channels, got {channels}.")
        self.channels = channels
        self.flip = bool(flip)
        first = channels // 2
        # (updated slice, conditioning slice)
        self._upd, self._cond = (slice(0, first), slice(first, None))
        if self.flip:
            self._upd, self._cond = self._cond, self._upd
        n_upd, n_cond = (first, channels - first) if not self.flip else (channels - first, first)
        self.fn = residual_function(spatial_dims, n_cond, n_upd, depth, kernel_size, norm, act)

    def _bounds(self) -> tuple[int, int, int, int]:
        """``(start, stop)`` of the updated, then of the conditioning channels (ints: TorchScript has no slices)."""
        first = self.channels // 2
        return (first, self.channels, 0, first) if self.flip else (0, first, first, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upd0, upd1, cond0, cond1 = self._bounds()
        residual = self.fn(x[:, cond0:cond1])  # before the copy: F's temporaries and the copy never coexist
        y = x.clone()
        y[:, upd0:upd1] += residual
        return y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        upd0, upd1, cond0, cond1 = self._bounds()
        residual = self.fn(y[:, cond0:cond1])
        x = y.clone()
        x[:, upd0:upd1] -= residual
        return x

    def reconstruct(
        self, y: torch.Tensor, grad_y: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rebuild the input in place in ``y`` and back-propagate ``grad_y`` (in place), with one evaluation of F.

        ``y`` and ``grad_y`` must be buffers owned by the engine.
        """
        cond = y[:, self._cond].detach()
        params = trainable_parameters(self)
        with torch.enable_grad():
            leaf = cond.requires_grad_(True) if cond.dtype.is_floating_point else cond
            out = self.fn(leaf)
        inputs = [leaf, *params] if leaf.requires_grad else params
        # Rebuild the input first and let F's output go before back-propagating through F: its backward needs the
        # graph (reached through the output's gradient edge), not the output's values, so the peak holds one
        # activation of the updated half less. `.data` writes the updated channels without bumping the version
        # counter that `cond` (saved by F's first layer) shares with `y`; those channels are not `cond`'s.
        root = _gradient_edge(out)
        y.data[:, self._upd] -= out.detach()
        del out
        results = torch.autograd.grad(root, inputs, grad_y[:, self._upd], allow_unused=True)
        if leaf.requires_grad:
            grad_cond, results = results[0], results[1:]
            grad_y[:, self._cond] += grad_cond
        accumulate_grads(grads, params, results)
        return y, grad_y

    def extra_repr(self) -> str:
        return f"channels={self.channels}, flip={self.flip}"


def alternating_couplings(
    spatial_dims: int,
    channels: int,
    num_blocks: int,
    start_flip: bool = False,
    channel_mixing: bool = False,
    **kwargs,
) -> Sequence[nn.Module]:
    """``num_blocks`` additive couplings with alternating halves, each preceded by channel mixing if asked."""
    blocks: list[nn.Module] = []
    for i in range(num_blocks):
        if channel_mixing:
            blocks.append(InvertibleChannelMixing(spatial_dims, channels))
        blocks.append(AdditiveCoupling(spatial_dims, channels, flip=bool((i + start_flip) % 2), **kwargs))
    return blocks
