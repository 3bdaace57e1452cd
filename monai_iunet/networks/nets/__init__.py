"""Networks, importable as in MONAI (``monai.networks.nets``)."""

from monai_iunet.nets import IUNet, IUnet, Iunet, iunet

__all__ = ["IUNet", "IUnet", "Iunet", "iunet"]
