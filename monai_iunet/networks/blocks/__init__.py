"""Invertible layers: orthogonal maps, invertible resampling, couplings, channel mixing, the low-memory conv."""

from __future__ import annotations

from monai_iunet.networks.blocks.channel_mixing import InvertibleChannelMixing
from monai_iunet.networks.blocks.coupling import AdditiveCoupling, alternating_couplings, residual_function
from monai_iunet.networks.blocks.low_memory_conv import Conv3dLowMemory
from monai_iunet.networks.blocks.orthogonal import orthogonal_matrix, skew_symmetric
from monai_iunet.networks.blocks.resampling import (
    InvertibleDownsampling,
    InvertibleUpsampling,
    check_divisible,
    haar_matrix,
    separable_dct_matrix,
)
from monai_iunet.networks.enums import OrthogonalMethod, ResamplingInit

__all__ = [
    "AdditiveCoupling",
    "Conv3dLowMemory",
    "InvertibleChannelMixing",
    "InvertibleDownsampling",
    "InvertibleUpsampling",
    "OrthogonalMethod",
    "ResamplingInit",
    "alternating_couplings",
    "check_divisible",
    "haar_matrix",
    "orthogonal_matrix",
    "residual_function",
    "separable_dct_matrix",
    "skew_symmetric",
]
