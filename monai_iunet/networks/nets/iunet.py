"""The network MONAI users instantiate: lifting convolution → invertible U-Net core → projection convolution."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from monai.networks.layers.factories import Conv
from monai.utils import deprecated_arg
from torch import nn

from monai_iunet.engine import ReconstructionGuard, uncompile_inner
from monai_iunet.engine.recompute import hooks_observe
from monai_iunet.networks.blocks.coupling import DEFAULT_ACT, DEFAULT_NORM
from monai_iunet.networks.enums import BackpropEngine, OrthogonalMethod, PaddingMode, ResamplingInit
from monai_iunet.networks.nets.invertible_unet import InvertibleUNet

__all__ = ["IUNet", "IUnet", "Iunet", "iunet"]


class IUNet(nn.Module):
    """Fully invertible U-Net (iUNet) for segmentation and image-to-image tasks, trained memory-efficiently.

    Etmann, Ke & Schönlieb, "iUNets: Fully invertible U-Nets with Learnable Up- and Downsampling", 2020
    (https://arxiv.org/abs/2005.05220). A linear convolution lifts ``in_channels`` to ``channels[0]`` feature
    maps, the bijective :class:`~monai_iunet.networks.nets.InvertibleUNet` processes them at the resolutions given by
    ``channels`` and ``strides``, and a linear convolution projects to ``out_channels`` (paper §3.1, Fig. 5). No
    activation follows the lifting, so nothing stored by it depends on the core. With
    ``memory_efficient=True`` (default) the core's activations are reconstructed in the backward pass, so the
    memory for training does not grow with the number of blocks.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels (logits).
        channels: feature maps per level; ``channels[0]`` is the "channel blowup". With stride 2 in 3D each
            next level must have a multiple of 8 channels, fewer than 8 times the previous level's; the error
            for an unreachable choice names the nearest reachable one.
        strides: downsampling factor between levels: an int, one int per spatial axis as a tuple
            (e.g. ``(1, 2, 2)``, when its length differs from ``len(channels) - 1``), or a sequence of
            ``len(channels) - 1`` of those.
        blocks: invertible coupling blocks per level and side, an int or one per level.
        block_depth: conv–activation–norm units in each block's residual function.
        kernel_size: convolution kernel size inside the blocks.
        norm: MONAI norm name or ``(name, args)``; default layer normalisation.
        act: MONAI activation name or ``(name, args)``; default LeakyReLU.
        channel_mixing: orthogonal 1×1 convolution before each coupling.
        resampling_method: ``"exp"`` or ``"cayley"`` (:class:`~monai_iunet.networks.enums.OrthogonalMethod`).
        resampling_init: ``"haar"``, ``"pixel_shuffle"`` (:class:`~monai_iunet.networks.enums.ResamplingInit`)
            or a tensor ``theta``.
        learnable_resampling: train the invertible up/downsampling.
        pad: ``"constant"``, ``"reflect"``, ``"replicate"`` (:class:`~monai_iunet.networks.enums.PaddingMode`) or
            ``None`` for spatial sizes not divisible by :attr:`total_stride` (``None`` rejects them).
        memory_efficient: memory-efficient backpropagation through the core (``False``: ordinary autograd).
        engine: ``"default"`` or ``"memcnn"`` (:class:`~monai_iunet.networks.enums.BackpropEngine`).
        block_factory: optional ``block_factory(spatial_dims, channels, index) -> nn.Module`` for custom
            invertible blocks, see :class:`~monai_iunet.networks.nets.InvertibleUNet`.
        guard: optional :class:`~monai_iunet.engine.ReconstructionGuard` for numerical drift.
        preserve_rng_state: replay each block's forward RNG state when the backward pass recomputes it (random
            layers such as dropout in a custom block); ``False`` skips recording it.
        block: deprecated name of ``block_factory`` (a ``DeprecationWarning``).

    Shapes:
        ``(N, in_channels, *S)`` → ``(N, out_channels, *S)``, for any spatial size ``S``.

    Raises:
        ValueError: for non-positive ``in_channels``/``out_channels`` and every error of
            :class:`~monai_iunet.networks.nets.InvertibleUNet`.

    Examples::

        # BraTS: 4 MRI modalities in, TC/WT/ET logits out
        >>> net = IUNet(spatial_dims=3, in_channels=4, out_channels=3, channels=(16, 32, 64, 128), blocks=2)
        >>> net(torch.randn(1, 4, 32, 32, 32)).shape
        torch.Size([1, 3, 32, 32, 32])
        >>> net.layout().splitlines()[-1]
        'IUNet: 592,675 parameters (lift 80 + core 592,544 + project 51)'
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
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128),
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
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.core = InvertibleUNet(
            spatial_dims=spatial_dims,
            channels=channels,
            strides=strides,
            blocks=blocks,
            block_depth=block_depth,
            kernel_size=kernel_size,
            norm=norm,
            act=act,
            channel_mixing=channel_mixing,
            resampling_method=resampling_method,
            resampling_init=resampling_init,
            learnable_resampling=learnable_resampling,
            pad=pad,
            memory_efficient=memory_efficient,
            engine=engine,
            block_factory=block_factory,
            guard=guard,
            preserve_rng_state=preserve_rng_state,
            block=None if block is block_factory else block,
        )
        conv = Conv[Conv.CONV, spatial_dims]
        self.lift = conv(in_channels, self.core.channels[0], kernel_size=1)
        self.project = conv(self.core.channels[0], out_channels, kernel_size=1)

    __jit_unused_properties__ = ["total_stride"]  # not needed by forward; TorchScript leaves it out

    def __prepare_scriptable__(self) -> IUNet:
        """``torch.jit.script(net)`` scripts :meth:`for_export` (what ``monai.bundle ckpt_export`` does by default)."""
        return self.for_export()

    @property
    def total_stride(self) -> tuple[int, ...]:
        """The total downsampling factor per axis; spatial sizes divisible by it need no padding."""
        return self.core.total_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch (see for_export)
            return self.project(self.core(self.lift(x)))
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"IUNet expects input of shape (N, {self.in_channels}, {', '.join(['*'] * self.spatial_dims)}) "
                f"(in_channels={self.in_channels}), got {tuple(x.shape)}; check the number of input "
                "modalities/channels in your data or set in_channels."
            )
        # the core's output only feeds the projection, so the engine may reuse its memory in backward, unless a
        # hook on the projection (or a global one) can see it
        reuse = not hooks_observe(self.project)
        return self.project(self.core(self.lift(x), reuse_output_memory=reuse))

    def compile_inner(self, **options) -> IUNet:
        """Compile, in place, the modules inside the memory-efficient core that ``torch.compile(net)`` leaves eager
        (the couplings' residual functions; see :meth:`InvertibleUNet.compile_inner`), so that a compiled
        memory-efficient training step is faster than an eager one. ``options`` are keyword arguments of
        ``torch.compile`` (``dynamic=False`` by default). Returns the network itself.

        Examples::

            >>> net = IUNet(spatial_dims=3, in_channels=4, out_channels=3, channels=(16, 32, 64, 128), blocks=4)
            >>> model = torch.compile(net.compile_inner())  # lifting, projection and loss too
        """
        self.core.compile_inner(**options)
        return self

    def init_identity(self) -> IUNet:
        """Make the freshly initialised network the identity map, for restoration tasks (paper §4.1).

        The core starts as the identity; this sets the projection to the pseudo-inverse of the lifting
        (``project(lift(x)) == x``, since ``in_channels <= channels[0]``) and both biases to zero.

        Returns:
            the network itself, so that a config can write ``"$@network_def.init_identity()"``.
        """
        if self.in_channels != self.out_channels:
            raise ValueError(
                f"an identity map needs in_channels == out_channels, got {self.in_channels} and {self.out_channels}."
            )
        with torch.no_grad():
            lift = self.lift.weight.flatten(1)
            self.project.weight.copy_(torch.linalg.pinv(lift).view_as(self.project.weight))
            self.lift.bias.zero_()
            self.project.bias.zero_()
        return self

    def for_export(self) -> IUNet:
        """A copy for inference export (TorchScript, ONNX): eval mode, ordinary autograd, and the orthogonal
        kernels of the invertible resampling and channel mixing stored as constants (every module with a
        ``freeze()``), since ONNX has no matrix exponential.

        Examples::

            >>> net = IUNet(spatial_dims=3, in_channels=4, out_channels=3, channels=(8, 16), channel_mixing=True)
            >>> torch.onnx.export(net.for_export(), (torch.randn(1, 4, 16, 16, 16),), "iunet.onnx")
        """
        exported = copy.deepcopy(self).eval()
        exported.core.memory_efficient = False
        uncompile_inner(exported)  # TorchScript and ONNX export the modules' own forward
        for module in exported.modules():
            if hasattr(module, "freeze"):
                module.freeze()
        return exported

    def layout(self) -> str:
        """The core's layout with the lifting and projection, and the parameters of all three.

        The last line counts every parameter of the network (what an optimiser given ``net.parameters()``
        trains); the core's own count is in the core's line.
        """
        counts = [sum(p.numel() for p in m.parameters()) for m in (self.lift, self.core, self.project)]
        return (
            f"lift {self.in_channels} -> {self.core.channels[0]} channels (linear 1x1 conv)\n"
            f"{self.core.layout()}\nproject {self.core.channels[0]} -> {self.out_channels} channels (linear 1x1 conv)\n"
            f"IUNet: {sum(counts):,} parameters (lift {counts[0]:,} + core {counts[1]:,} + project {counts[2]:,})"
        )


IUnet = Iunet = iunet = IUNet
