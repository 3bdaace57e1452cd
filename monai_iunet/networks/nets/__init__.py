"""Networks, importable as in MONAI (``monai.networks.nets``)."""

from __future__ import annotations

from monai_iunet.networks.enums import BackpropEngine, PaddingMode
from monai_iunet.networks.nets.invertible_unet import InvertibleSkip, InvertibleUNet, split_channels
from monai_iunet.networks.nets.iunet import IUNet, IUnet, Iunet, iunet

__all__ = [
    "BackpropEngine",
    "IUNet",
    "IUnet",
    "InvertibleSkip",
    "InvertibleUNet",
    "Iunet",
    "PaddingMode",
    "iunet",
    "split_channels",
]
