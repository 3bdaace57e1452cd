"""Learnable invertible up- and downsampling (paper §2, Theorem 4 and Corollaries 5–6).

A special orthogonal ``σ × σ`` matrix (``σ`` = product of the strides) is reordered into ``σ`` filters of the
stride's shape. A convolution with these filters whose stride equals the kernel size has non-overlapping windows
and is therefore an orthogonal operator; its inverse is the transposed convolution with the same kernel. Each
input channel gets its own matrix (Corollary 6), so the convolution is grouped by channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.transforms.utils import compute_divisible_spatial_size
from torch import nn

from monai_iunet.networks.blocks.orthogonal import orthogonal_matrix
from monai_iunet.networks.enums import OrthogonalMethod, ResamplingInit, resolve_option
from monai_iunet.networks.utils import ints_rep

__all__ = [
    "InvertibleDownsampling",
    "InvertibleUpsampling",
    "check_divisible",
    "dct_matrix",
    "ensure_tuple_stride",
    "haar_matrix",
    "separable_dct_matrix",
]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def ensure_tuple_stride(stride: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """Return ``stride`` as a tuple of ``spatial_dims`` positive ints (:func:`monai.utils.ensure_tuple_rep`).

    Raises:
        ValueError: when ``stride`` is neither one positive int nor ``spatial_dims`` of them.
    """
    error = f"stride must be a positive int or a sequence of {spatial_dims} positive ints, got {stride!r}."
    return ints_rep(stride, spatial_dims, 1, error)


def check_divisible(spatial_shape: Sequence[int], factor: Sequence[int], hint: str = "") -> None:
    """Raise a ``ValueError`` naming the nearest valid size if ``spatial_shape`` is not divisible by ``factor``."""
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if all(s % f == 0 for s, f in zip(spatial_shape, factor)):
        return
    lower = tuple(max(f, s - s % f) for s, f in zip(spatial_shape, factor))
    upper = tuple(int(s) for s in compute_divisible_spatial_size(spatial_shape, tuple(factor)))
    raise ValueError(
        f"spatial size {spatial_shape} is not divisible by {tuple(factor)}; crop to {lower} or pad to {upper}{hint}."
    )


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix of size ``n``; for ``n = 2`` it is the Haar matrix ``[[1, 1], [1, -1]] / sqrt(2)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    mat = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    mat[0] /= math.sqrt(2.0)
    return mat


def separable_dct_matrix(stride: Sequence[int]) -> torch.Tensor:
    """The separable orthonormal DCT-II of one stride window, as a ``σ × σ`` orthogonal matrix (float64).

    The Kronecker product over axes of :func:`dct_matrix` of each axis' stride: rows are filters, columns are the
    window's voxels in C order. Axes with stride 1 contribute the identity and axes with stride 2 the 1D Haar
    matrix, so for strides of 1 and 2 this is the N-D Haar transform (:func:`haar_matrix`); for other strides it
    is the DCT-II, the natural generalisation used by ``init="haar"``.
    """
    mat = torch.ones(1, 1, dtype=torch.float64)
    for s in stride:
        mat = torch.kron(mat, dct_matrix(s))
    return mat


def haar_matrix(stride: Sequence[int]) -> torch.Tensor:
    """The N-D Haar transform of one stride window as a ``σ × σ`` orthogonal matrix (strides of 1 and 2 only).

    Raises:
        ValueError: for a stride other than 1 or 2, which has no Haar transform; use :func:`separable_dct_matrix`.
    """
    if any(int(s) not in (1, 2) for s in stride):
        raise ValueError(
            f"the Haar transform is defined for strides of 1 and 2, got {tuple(stride)}; separable_dct_matrix(stride) "
            "gives the DCT-II, which init='haar' uses for other strides."
        )
    return separable_dct_matrix(stride)


class _OrthogonalResampling(nn.Module):
    """Shared kernel of :class:`InvertibleDownsampling` and :class:`InvertibleUpsampling`.

    Holds ``theta`` of shape ``(channels, σ, σ)``; the per-channel orthogonal matrix is
    ``orthogonal_matrix(theta) @ base`` with a fixed ``base`` (for ``init="haar"`` the Haar matrix, or for strides
    other than 1 and 2 the DCT-II, :func:`separable_dct_matrix`; else the identity), so ``theta = 0`` gives the
    Haar transform or pixel shuffle exactly. Composing with a fixed base,
    as ``torch.nn.utils.parametrizations.orthogonal`` does, also reaches Haar matrices of determinant -1.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        stride: int | Sequence[int] = 2,
        method: OrthogonalMethod | str = OrthogonalMethod.EXP,
        init: ResamplingInit | str | torch.Tensor = ResamplingInit.HAAR,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if int(channels) < 1:
            raise ValueError(f"channels must be a positive int, got {channels}.")
        self.spatial_dims = spatial_dims
        self.channels = int(channels)
        self.stride = ensure_tuple_stride(stride, spatial_dims)
        self.sigma = math.prod(self.stride)
        self.method = resolve_option(method, OrthogonalMethod, "method")

        sigma = self.sigma
        theta = torch.zeros(self.channels, sigma, sigma)
        self.haar_base = False
        if isinstance(init, str):
            self.haar_base = resolve_option(init, ResamplingInit, "init") == ResamplingInit.HAAR
        else:
            given = torch.as_tensor(init, dtype=torch.get_default_dtype())
            if given.shape not in ((sigma, sigma), (self.channels, sigma, sigma)):
                raise ValueError(
                    f"init as a tensor must be theta of shape ({sigma}, {sigma}) or "
                    f"({self.channels}, {sigma}, {sigma}), got {tuple(given.shape)}."
                )
            theta = given.expand(self.channels, sigma, sigma).clone()
        if learnable:
            self.theta = nn.Parameter(theta)
        else:
            self.register_buffer("theta", theta)
        # The fixed Haar base is not a buffer: `.float()` would cast a buffer down and `.double()` could not bring
        # the lost digits back. It is rebuilt in float64 where it is used (see base()), so float64 stays exact.
        self.register_buffer("frozen_kernel", None, persistent=False)

    def freeze(self) -> None:
        """Store the current kernel as a constant (for export: ONNX has no matrix exponential)."""
        with torch.no_grad():
            self.frozen_kernel = self.kernel()

    def base(self, like: torch.Tensor) -> torch.Tensor | None:
        """The fixed base matrix, shape ``(σ, σ)``, computed in float64 and cast to ``like``'s dtype and device
        (``None`` for ``init="pixel_shuffle"`` or a given ``theta``: the identity)."""
        return separable_dct_matrix(self.stride).to(like) if self.haar_base else None

    def matrix(self) -> torch.Tensor:
        """The per-channel orthogonal matrices, shape ``(channels, σ, σ)``."""
        rotation = orthogonal_matrix(self.theta, self.method)
        base = self.base(rotation)
        return rotation if base is None else rotation @ base

    def kernel(self) -> torch.Tensor:
        """The matrices' rows reordered into filters, shape ``(channels * σ, 1, *stride)`` (paper's ``R``)."""
        frozen = self.frozen_kernel
        if frozen is not None:
            return frozen
        if torch.jit.is_scripting():  # TorchScript compiles only this branch
            raise RuntimeError("only a frozen kernel can be scripted: script IUNet.for_export() (or call freeze()).")
        else:
            return self.matrix().reshape(self.channels * self.sigma, 1, *self.stride)

    def _weight(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel()
        if torch.jit.is_scripting():  # an exported model runs without autocast
            return weight.to(x.dtype)
        else:
            # Under autocast the convolution runs in the autocast dtype anyway; outside it, follow the input.
            return weight if torch.is_autocast_enabled(x.device.type) else weight.to(x.dtype)

    def _conv(self, x: torch.Tensor, transposed: bool) -> torch.Tensor:
        """The grouped convolution (transposed: its inverse) with the kernel, written per dimension for TorchScript."""
        weight, stride, groups = self._weight(x), self.stride, self.channels
        if self.spatial_dims == 3:
            if transposed:
                return F.conv_transpose3d(x, weight, None, stride, 0, 0, groups)
            return F.conv3d(x, weight, None, stride, 0, 1, groups)
        if self.spatial_dims == 2:
            if transposed:
                return F.conv_transpose2d(x, weight, None, stride, 0, 0, groups)
            return F.conv2d(x, weight, None, stride, 0, 1, groups)
        if transposed:
            return F.conv_transpose1d(x, weight, None, stride, 0, 0, groups)
        return F.conv1d(x, weight, None, stride, 0, 1, groups)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if x.shape[1] != self.channels:
                raise ValueError(f"expected {self.channels} channels at full resolution, got {x.shape[1]}.")
            check_divisible(x.shape[2:], self.stride, hint=f" (stride {self.stride} of invertible downsampling)")
        return self._conv(x, transposed=False)

    def _up(self, y: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if y.shape[1] != self.channels * self.sigma:
                raise ValueError(f"expected {self.channels * self.sigma} channels at low resolution, got {y.shape[1]}.")
        return self._conv(y, transposed=True)

    def extra_repr(self) -> str:
        learnable = isinstance(self.theta, nn.Parameter)
        return f"channels={self.channels}, stride={self.stride}, method='{self.method}', learnable={learnable}"


class InvertibleDownsampling(_OrthogonalResampling):
    """Learnable invertible downsampling: an orthogonal strided convolution (paper Cor. 5–6).

    Maps ``(N, C, *S)`` to ``(N, C * σ, *(S / stride))`` where ``σ = prod(stride)``. The inverse is the
    transposed convolution with the same kernel, so ``inverse(forward(x)) == x`` up to round-off.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input channels ``C``; each gets its own orthogonal matrix.
        stride: int or one int per spatial axis (anisotropic, e.g. ``(1, 2, 2)``); also the kernel size.
        method: how ``theta`` is mapped to SO(σ), an :class:`~monai_iunet.networks.enums.OrthogonalMethod` or
            its value: ``"exp"`` (matrix exponential) or ``"cayley"``.
        init: a :class:`~monai_iunet.networks.enums.ResamplingInit` or its value, ``"haar"`` (the N-D Haar
            transform; the DCT-II along axes whose stride is neither 1 nor 2, :func:`separable_dct_matrix`) or
            ``"pixel_shuffle"`` (the identity matrix, i.e. space-to-depth), or a tensor ``theta`` of shape
            ``(σ, σ)`` or ``(in_channels, σ, σ)`` applied to the identity.
        learnable: whether ``theta`` is a trainable parameter.

    Examples::

        >>> down = InvertibleDownsampling(spatial_dims=3, in_channels=4, stride=(1, 2, 2))
        >>> x = torch.randn(1, 4, 8, 16, 16)
        >>> y = down(x)
        >>> y.shape
        torch.Size([1, 16, 8, 8, 8])
        >>> torch.allclose(down.inverse(y), x, atol=1e-6)
        True
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        stride: int | Sequence[int] = 2,
        method: OrthogonalMethod | str = OrthogonalMethod.EXP,
        init: ResamplingInit | str | torch.Tensor = ResamplingInit.HAAR,
        learnable: bool = True,
    ) -> None:
        super().__init__(spatial_dims, in_channels, stride, method, init, learnable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample ``x`` of shape ``(N, C, *S)`` to ``(N, C * σ, *(S / stride))``."""
        return self._down(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`: ``(N, C * σ, *S')`` to ``(N, C, *(S' * stride))``."""
        return self._up(y)


class InvertibleUpsampling(_OrthogonalResampling):
    """Learnable invertible upsampling: the inverse of an :class:`InvertibleDownsampling` (paper Def. 3).

    Maps ``(N, C, *S)`` to ``(N, C / σ, *(S * stride))`` with a transposed orthogonal convolution. With the same
    ``stride``, ``method`` and ``init`` as a downsampling layer it starts as that layer's exact inverse.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of (low-resolution) input channels ``C``; must be divisible by ``σ = prod(stride)``.
        stride: int or one int per spatial axis.
        method: ``"exp"`` or ``"cayley"`` (:class:`~monai_iunet.networks.enums.OrthogonalMethod`).
        init: ``"haar"``, ``"pixel_shuffle"`` (:class:`~monai_iunet.networks.enums.ResamplingInit`) or a tensor
            ``theta`` of shape ``(σ, σ)`` or ``(C / σ, σ, σ)``.
        learnable: whether ``theta`` is a trainable parameter.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        stride: int | Sequence[int] = 2,
        method: OrthogonalMethod | str = OrthogonalMethod.EXP,
        init: ResamplingInit | str | torch.Tensor = ResamplingInit.HAAR,
        learnable: bool = True,
    ) -> None:
        sigma = math.prod(ensure_tuple_stride(stride, spatial_dims))
        if in_channels % sigma:
            raise ValueError(
                f"in_channels={in_channels} of invertible upsampling must be divisible by prod(stride)={sigma}."
            )
        super().__init__(spatial_dims, in_channels // sigma, stride, method, init, learnable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` of shape ``(N, C, *S)`` to ``(N, C / σ, *(S * stride))``."""
        return self._up(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`."""
        return self._down(y)
