"""The bijective core of the iUNet (paper §3, eqs. 8–9).

At each level the feature maps pass through invertible blocks; then the first ``k`` channels are invertibly
downsampled into the next level while the other channels wait as the skip connection. Coming back up, the next
level's output is invertibly upsampled to ``k`` channels and concatenated with the skip, followed by more blocks.
The number of channels and the spatial size of the whole core's input and output are the same.

Built from three pieces that all keep the forward/inverse protocol: blocks
(:mod:`monai_iunet.networks.blocks.coupling`), resampling (:mod:`monai_iunet.networks.blocks.resampling`) and
:class:`InvertibleSkip`, which sends part of the channels through a nested
:class:`~monai_iunet.engine.InvertibleSequence` (downsampling, the next level, upsampling).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms.utils import compute_divisible_spatial_size
from monai.utils import deprecated_arg
from torch import nn

from monai_iunet.engine import (
    Invertible,
    InvertibleSequence,
    ReconstructionGuard,
    check_invertible,
    compile_inner,
    memory_efficient_apply,
    reconstruct,
)
from monai_iunet.engine.backprop import deprecated_private_output
from monai_iunet.engine.memcnn_adapter import memcnn_apply, wrap_with_memcnn
from monai_iunet.engine.recompute import hooks_observe
from monai_iunet.networks.blocks.coupling import DEFAULT_ACT, DEFAULT_NORM, alternating_couplings
from monai_iunet.networks.blocks.resampling import (
    InvertibleDownsampling,
    InvertibleUpsampling,
    check_divisible,
    ensure_tuple_stride,
)
from monai_iunet.networks.enums import BackpropEngine, OrthogonalMethod, PaddingMode, ResamplingInit, resolve_option
from monai_iunet.networks.utils import ints_rep

__all__ = ["InvertibleSkip", "InvertibleUNet", "blocks_per_level", "per_level_strides", "split_channels"]


@torch.jit.script_if_tracing
def pad_to_multiple(x: torch.Tensor, multiple: list[int], mode: str = "constant") -> torch.Tensor:
    """Pad the end of each spatial axis of ``x`` to a multiple of ``multiple`` (``mode="none"``: raise instead).

    The one padding path of :class:`InvertibleUNet` (eager, traced and scripted). Scripted when traced, so that a
    traced network pads every input size, not only the one it was traced at; the widths are therefore computed
    here in TorchScript (``monai.transforms.utils.compute_divisible_spatial_size`` is not scriptable; the eager
    checks use it). It returns a new tensor even with nothing to pad, so that a tracer never takes the result for
    ``x``.
    """
    widths: list[int] = []
    for i in range(x.dim() - 3, -1, -1):
        size = x.shape[i + 2]
        widths += [0, (multiple[i] - size % multiple[i]) % multiple[i]]
    if mode == "none":
        if max(widths) == 0:
            return x
        raise ValueError(
            f"spatial size {x.shape[2:]} is not divisible by {multiple}; build the network with pad='constant'."
        )
    return F.pad(x, widths, mode=mode)


@torch.jit.script_if_tracing
def crop_like(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Crop the spatial axes of ``y`` (from the start) to those of ``x``, undoing :func:`pad_to_multiple`."""
    for i in range(x.dim() - 2):
        y = y.narrow(i + 2, 0, x.shape[i + 2])
    return y


class InvertibleSkip(nn.Module):
    """Send the first ``split`` channels through ``inner`` and pass the rest through unchanged.

    ``y = concat(inner(x[:, :split]), x[:, split:])``. With ``inner`` = downsampling → next level → upsampling,
    the untouched channels are the U-Net's skip connection (paper eqs. 8–9).

    Args:
        split: number of channels that go through ``inner``.
        inner: an invertible module that keeps the shape of its input.
    """

    def __init__(self, split: int, inner: Invertible) -> None:
        super().__init__()
        self.split = split
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner(x[:, : self.split]), x[:, self.split :]], dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner.inverse(y[:, : self.split]), y[:, self.split :]], dim=1)

    def reconstruct(
        self, y: torch.Tensor, grad_y: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rebuild the first ``split`` channels of ``y`` (and of ``grad_y``) in place; the skip needs nothing."""
        x_part, grad_part = reconstruct(self.inner, y[:, : self.split], grad_y[:, : self.split], grads)
        y[:, : self.split].copy_(x_part)
        grad_y[:, : self.split].copy_(grad_part)
        return y, grad_y

    def extra_repr(self) -> str:
        return f"split={self.split}"


def split_channels(channels: Sequence[int], sigmas: Sequence[int]) -> list[int]:
    """How many channels each level sends down: ``channels[l + 1] / σ_l``, checked to be reachable.

    Raises:
        ValueError: naming the nearest reachable ``channels`` when a level's count cannot be produced.
    """
    splits, nearest, ok = [], [int(channels[0])], True
    for level, sigma in enumerate(sigmas):
        c, c_next = nearest[level], int(channels[level + 1])
        k = max(1, min(c - 1, round(c_next / sigma)))
        if c_next != k * sigma or c < 2:
            ok = False
        nearest.append(k * sigma)
        splits.append(k)
    if not ok:
        raise ValueError(
            f"channels={tuple(int(c) for c in channels)} cannot be reached: level l+1 must have "
            f"k * prod(stride) channels with 0 < k < channels[l] (prod(stride) per level: {tuple(sigmas)}); "
            f"the nearest reachable configuration is channels={tuple(nearest)}."
        )
    return splits


def per_level_strides(
    strides: int | Sequence[int] | Sequence[Sequence[int]], spatial_dims: int, levels: int
) -> list[tuple[int, ...]]:
    """The stride of each of the ``levels - 1`` downsamplings, one int per spatial axis.

    ``strides`` is an int (every level, every axis), one int per axis (every level), or one entry per level. A
    flat sequence of ``spatial_dims`` ints when there are also ``spatial_dims`` downsamplings could mean either;
    unless its values are all equal (both readings agree), that raises a ``ValueError`` showing both spellings.
    """
    num = levels - 1
    flat = not isinstance(strides, int) and all(isinstance(s, (int, np.integer)) for s in strides)
    if flat and len(strides) == spatial_dims == num and len(set(strides)) > 1:
        per_level = tuple(tuple([int(s)] * spatial_dims) for s in strides)
        per_axis = tuple(tuple(int(s) for s in strides) for _ in range(num))
        raise ValueError(
            f"strides={tuple(strides)} is ambiguous with {levels} levels in {spatial_dims}D: write "
            f"strides={per_level} for one stride per level, or strides={per_axis} for one per axis at every level."
        )
    if isinstance(strides, int) or (flat and len(strides) == spatial_dims):
        strides = [strides] * num
    strides = list(strides)
    if len(strides) != num:
        raise ValueError(
            f"strides must be one int, one int per spatial axis ({spatial_dims}), or one entry per downsampling "
            f"(len(channels) - 1 = {num}), got {len(strides)} entries."
        )
    return [ensure_tuple_stride(s, spatial_dims) for s in strides]


def blocks_per_level(blocks: int | Sequence[int], levels: int) -> list[int]:
    """The number of invertible blocks per side at each of the ``levels`` levels (:func:`ensure_tuple_rep`).

    Raises:
        ValueError: when ``blocks`` is neither one non-negative int nor one per level.
    """
    error = f"blocks must be one non-negative int or one per level (len(channels) = {levels}), got {blocks!r}."
    return list(ints_rep(blocks, levels, 0, error))


def _user_block(block_factory: Callable[[int, int, int], nn.Module], spatial_dims: int, channels: int, index: int):
    """Build block ``index`` with the user's factory and check that it keeps the invertible protocol."""
    return check_invertible(
        block_factory(spatial_dims, channels, index),
        what=f"the module returned by block_factory({spatial_dims}, {channels}, {index})",
    )


class InvertibleUNet(nn.Module):
    """The fully invertible U-Net core: a bijection with the same shape in and out (paper §3, Fig. 5).

    Level ``l`` applies ``blocks[l]`` invertible blocks, sends ``k_l = channels[l + 1] / prod(strides[l])``
    channels through learnable invertible downsampling to level ``l + 1`` and keeps ``channels[l] - k_l``
    channels as the skip; on the way back the upsampled channels are concatenated with the skip and
    ``blocks[l]`` more blocks follow. Upsampling starts as the inverse of its downsampling and every block as
    the identity, so the whole core is the identity at initialisation.

    Training is memory-efficient by default: the activations inside the core are not stored but reconstructed
    from the output in the backward pass (:mod:`monai_iunet.engine`), so memory does not grow with depth.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        channels: channels per level, e.g. ``(16, 32, 64, 128)``; ``channels[0]`` is the input's channels.
        strides: downsampling factor between levels: an int, one per axis (``(1, 2, 2)``), or a sequence of
            ``len(channels) - 1`` of those.
        blocks: invertible blocks per level and side, an int or one per level.
        block_depth: conv–activation–norm units in each coupling's residual function.
        kernel_size: convolution kernel size in the residual functions.
        norm: MONAI norm name or ``(name, args)``; default layer normalisation (GroupNorm, one group).
        act: MONAI activation name or ``(name, args)``; default LeakyReLU.
        channel_mixing: put an orthogonal 1×1 convolution
            (:class:`~monai_iunet.networks.blocks.InvertibleChannelMixing`) before every coupling.
        resampling_method: how the up/downsampling's ``theta`` becomes an orthogonal matrix, an
            :class:`~monai_iunet.networks.enums.OrthogonalMethod` or its value: ``"exp"`` or ``"cayley"``.
        resampling_init: a :class:`~monai_iunet.networks.enums.ResamplingInit` or its value, ``"haar"`` or
            ``"pixel_shuffle"``, or a tensor ``theta``
            (see :class:`~monai_iunet.networks.blocks.InvertibleDownsampling`).
        learnable_resampling: train the up/downsampling.
        pad: how inputs whose spatial size is not divisible by :attr:`total_stride` are padded (at the end of
            each axis) and cropped back, a :class:`~monai_iunet.networks.enums.PaddingMode` or its value:
            ``"constant"`` (zeros), ``"reflect"``, ``"replicate"``; or ``None`` to reject them with an error
            naming the nearest valid size.
        memory_efficient: reconstruct activations in backward instead of storing them; ``False`` gives
            ordinary autograd through the same weights.
        engine: a :class:`~monai_iunet.networks.enums.BackpropEngine` or its value: ``"default"`` (this
            package's engine) or ``"memcnn"`` (memcnn's ``InvertibleModuleWrapper`` around each block, as in the
            paper; needs ``pip install memcnn``).
        block_factory: optional ``block_factory(spatial_dims, channels, index) -> nn.Module`` building the
            invertible blocks (``forward`` and ``inverse``, same shape in and out) used instead of additive
            couplings; ``index`` counts the blocks from 0. Checked for ``inverse`` at construction.
        guard: optional :class:`~monai_iunet.engine.ReconstructionGuard` that checks the memory-efficient
            engine's reconstruction against the true input every so often (numerical drift).
        preserve_rng_state: replay in backward the RNG state each block saw in forward, so random layers in
            blocks (dropout, stochastic depth) recompute exactly; ``False`` skips recording it (both engines).
        block: deprecated name of ``block_factory`` (a ``DeprecationWarning``; easily confused with ``blocks``).

    Shapes:
        ``forward``/``inverse``: ``(N, channels[0], *S)`` → ``(N, channels[0], *S)``.

    Raises:
        ValueError: for unreachable ``channels`` (naming the nearest reachable ones), ambiguous ``strides``
            (showing both spellings) and unknown options (listing the choices).
        NoInverseError: when a module built by ``block_factory`` has no ``inverse``.

    Examples::

        >>> core = InvertibleUNet(spatial_dims=3, channels=(16, 32, 64), blocks=2)
        >>> print(core.layout())  # doctest: +NORMALIZE_WHITESPACE
        level  scale        channels  blocks  down  skip  stride
        0      1/1x1x1      16        2+2    4     12    (2, 2, 2)
        1      1/2x2x2      32        2+2    8     24    (2, 2, 2)
        2      1/4x4x4      64        2+2    0     -     -
        total stride (4, 4, 4), 147,360 core parameters, memory_efficient=True, engine='default'
        >>> x = torch.randn(1, 16, 16, 16, 16)
        >>> y = core(x)
        >>> y.shape
        torch.Size([1, 16, 16, 16, 16])
        >>> torch.allclose(core.inverse(y), x, atol=1e-5)
        True
    """

    @deprecated_arg(
        name="block",
        since="0.1.0",
        new_name="block_factory",
        msg_suffix="please use `block_factory` instead (`blocks` is the number of blocks).",
        warning_category=DeprecationWarning,
    )
    def __init__(
        self,
        spatial_dims: int,
        channels: Sequence[int],
        strides: int | Sequence[int] | Sequence[Sequence[int]] = 2,
        blocks: int | Sequence[int] = 2,
        block_depth: int = 1,
        kernel_size: int = 3,
        norm: str | tuple = DEFAULT_NORM,
        act: str | tuple = DEFAULT_ACT,
        channel_mixing: bool = False,
        resampling_method: OrthogonalMethod | str = OrthogonalMethod.EXP,
        resampling_init: ResamplingInit | str | torch.Tensor = ResamplingInit.HAAR,
        learnable_resampling: bool = True,
        pad: PaddingMode | str | None = PaddingMode.CONSTANT,
        memory_efficient: bool = True,
        engine: BackpropEngine | str = BackpropEngine.DEFAULT,
        block_factory: Callable[[int, int, int], nn.Module] | None = None,
        guard: ReconstructionGuard | None = None,
        preserve_rng_state: bool = True,
        block: Callable[[int, int, int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1:
            raise ValueError("channels must name at least one level.")
        levels = len(channels)
        if block is not None and block_factory is not block:
            raise ValueError("pass the block factory once, as block_factory= (block= is its deprecated name).")

        self.spatial_dims = spatial_dims
        self.channels = channels
        self.strides = per_level_strides(strides, spatial_dims, levels)
        self.blocks = blocks_per_level(blocks, levels)
        self.splits = split_channels(channels, [math.prod(s) for s in self.strides])
        self.total_stride = tuple(math.prod(s[i] for s in self.strides) for i in range(spatial_dims))
        self.pad = None if pad is None else resolve_option(pad, PaddingMode, "pad")
        self.memory_efficient = bool(memory_efficient)
        self.engine = resolve_option(engine, BackpropEngine, "engine")
        self.guard = guard
        self.preserve_rng_state = bool(preserve_rng_state)
        self._warned_pad = False

        block_kwargs = dict(depth=block_depth, kernel_size=kernel_size, norm=norm, act=act)
        resampling_kwargs = dict(
            method=resolve_option(resampling_method, OrthogonalMethod, "resampling_method"),
            init=resolve_option(resampling_init, ResamplingInit, "resampling_init")
            if isinstance(resampling_init, str)
            else resampling_init,
            learnable=learnable_resampling,
        )
        counter = itertools.count()

        def side(level: int, start_flip: bool) -> list[nn.Module]:
            c = channels[level]
            if block_factory is not None:
                return [_user_block(block_factory, spatial_dims, c, next(counter)) for _ in range(self.blocks[level])]
            return list(
                alternating_couplings(
                    spatial_dims, c, self.blocks[level], start_flip, channel_mixing=channel_mixing, **block_kwargs
                )
            )

        def level_modules(level: int) -> list[nn.Module]:
            modules = side(level, start_flip=False)
            if level < levels - 1:
                k, stride = self.splits[level], self.strides[level]
                inner = InvertibleSequence(
                    InvertibleDownsampling(spatial_dims, k, stride, **resampling_kwargs),
                    *level_modules(level + 1),
                    InvertibleUpsampling(spatial_dims, channels[level + 1], stride, **resampling_kwargs),
                )
                modules.append(InvertibleSkip(k, inner))
            # continue the alternation of halves across the skip
            return modules + side(level, start_flip=bool(self.blocks[level] % 2))

        self.body = InvertibleSequence(*level_modules(0))
        if self.engine == BackpropEngine.MEMCNN:
            wrap_with_memcnn(self.body, skip=(InvertibleDownsampling, InvertibleUpsampling))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded at the end of each axis to a multiple of :attr:`total_stride` (``x`` itself if no padding
        is needed); raises naming the nearest valid sizes when padding is off, warns once when it pads."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.channels[0]:
            raise ValueError(
                f"expected input of shape (N, {self.channels[0]}, {', '.join(['*'] * self.spatial_dims)}), "
                f"got {tuple(x.shape)}."
            )
        spatial = tuple(int(s) for s in x.shape[2:])
        padded = tuple(int(s) for s in compute_divisible_spatial_size(spatial, self.total_stride))
        if padded == spatial:
            return x
        if self.pad is None:
            check_divisible(spatial, self.total_stride, hint=", or build the network with pad='constant'")
        if not self._warned_pad:
            warnings.warn(
                f"spatial size {spatial} is not divisible by {self.total_stride}: padding ({self.pad}) to "
                f"{padded} and cropping back (warned once).",
                stacklevel=3,
            )
            self._warned_pad = True
        return pad_to_multiple(x, list(self.total_stride), str(self.pad))

    def _forward_export(self, x: torch.Tensor) -> torch.Tensor:
        """Inference through the body, padding computed in the graph: a traced or scripted core takes any size."""
        padded = pad_to_multiple(x, list(self.total_stride), "none" if self.pad is None else self.pad)
        return crop_like(self.body(padded), x)

    def forward(
        self, x: torch.Tensor, reuse_output_memory: bool = False, private_output: bool | None = None
    ) -> torch.Tensor:
        """Map ``x`` of shape ``(N, channels[0], *S)`` to the same shape.

        Args:
            x: input, shape ``(N, channels[0], *S)``; never modified.
            reuse_output_memory: promise that the output (and its gradient) is only consumed by a layer that has
                finished with it when the backward pass reaches the core, such as :class:`~monai_iunet.IUNet`'s
                projection; the engine then reconstructs in place in its memory instead of copying it (see
                :func:`~monai_iunet.engine.memory_efficient_apply`). Ignored while a hook on the core could see
                the output or its gradient.
            private_output: deprecated name of ``reuse_output_memory``.
        """
        if torch.jit.is_scripting() or torch.jit.is_tracing():  # exported: TorchScript compiles only this branch
            return self._forward_export(x)
        if private_output is None:
            return self._forward(x, reuse_output_memory=reuse_output_memory)
        return self._forward(x, reuse_output_memory=reuse_output_memory, private_output=private_output)

    # the deprecation wrapper is on this eager-only method: TorchScript cannot compile forward through a decorator
    @deprecated_private_output
    def _forward(
        self, x: torch.Tensor, reuse_output_memory: bool = False, private_output: bool | None = None
    ) -> torch.Tensor:
        padded = self._pad(x)
        if not self.memory_efficient:
            y = self.body(padded)  # ordinary autograd; memcnn's blocks, if any, are plain blocks here
        elif self.engine == BackpropEngine.MEMCNN:
            y = memcnn_apply(self.body, padded, preserve_rng_state=self.preserve_rng_state)
        else:
            reuse = reuse_output_memory and not hooks_observe(self)
            rng = self.preserve_rng_state
            y = memory_efficient_apply(self.body, padded, reuse, guard=self.guard, preserve_rng_state=rng)
        return y if padded is x else crop_like(y, x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Map an output back to the input. Exact for inputs that needed no padding; with padding, the
        padded region of the output is not known, so the result is only approximate near the far borders."""
        padded = self._pad(y)
        x = self.body.inverse(padded)
        return x if padded is y else crop_like(x, y)

    def compile_inner(self, **options) -> InvertibleUNet:
        """Compile, in place, the plain modules the invertible blocks call (the couplings' residual functions), which
        ``torch.compile(net)`` does not reach: the memory-efficient engine runs them eagerly inside its opaque
        region. See :func:`monai_iunet.engine.compile_inner` (``options``: keyword arguments of ``torch.compile``;
        ``dynamic=False`` by default). Returns the core itself.
        """
        compile_inner(self.body, **options)
        return self

    def layout(self) -> str:
        """A table of the levels: resolution, channels, blocks per side, channels sent down and kept as skip."""
        rows = ["level  scale        channels  blocks  down  skip  stride"]
        scale = (1,) * self.spatial_dims
        for level, c in enumerate(self.channels):
            down = self.splits[level] if level < len(self.splits) else 0
            stride = self.strides[level] if level < len(self.strides) else "-"
            rows.append(
                f"{level:<6} {'1/' + 'x'.join(map(str, scale)):<12} {c:<9} {self.blocks[level]}+{self.blocks[level]:<4}"
                f" {down:<5} {c - down if down else '-':<5} {stride}"
            )
            if level < len(self.strides):
                scale = tuple(a * b for a, b in zip(scale, self.strides[level]))
        params = sum(p.numel() for p in self.parameters())
        rows.append(
            f"total stride {self.total_stride}, {params:,} core parameters, "
            f"memory_efficient={self.memory_efficient}, engine='{self.engine}'"
        )
        return "\n".join(rows)
