"""MONAI-style import path: ``monai_iunet.networks.nets.IUNet``."""
