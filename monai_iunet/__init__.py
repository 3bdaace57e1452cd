"""monai-iunet: fully invertible U-Nets (iUNets) for MONAI, trained with memory-efficient backpropagation."""

from __future__ import annotations

from monai_iunet.engine import InvertibleSequence, ReconstructionGuard, memory_efficient_apply
from monai_iunet.networks.blocks import (
    AdditiveCoupling,
    InvertibleChannelMixing,
    InvertibleDownsampling,
    InvertibleUpsampling,
    orthogonal_matrix,
)
from monai_iunet.networks.nets import InvertibleSkip, InvertibleUNet, IUNet, IUnet, Iunet, iunet
from monai_iunet.planner import estimate_memory, fit_channels

__version__ = "0.1.0"

__all__ = [
    "AdditiveCoupling",
    "IUNet",
    "IUnet",
    "Iunet",
    "InvertibleChannelMixing",
    "InvertibleDownsampling",
    "InvertibleSequence",
    "InvertibleSkip",
    "InvertibleUNet",
    "InvertibleUpsampling",
    "ReconstructionGuard",
    "estimate_memory",
    "fit_channels",
    "iunet",
    "memory_efficient_apply",
    "orthogonal_matrix",
]
