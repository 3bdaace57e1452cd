"""Networks, importable as in MONAI (``monai.networks.nets``)."""

from __future__ import annotations

from monai_iunet.networks.nets.invertible_unet import InvertibleSkip, InvertibleUNet, split_channels
from monai_iunet.networks.nets.iunet import IUNet, IUnet, Iunet, iunet

__all__ = ["IUNet", "IUnet", "InvertibleSkip", "InvertibleUNet", "Iunet", "iunet", "split_channels"]
