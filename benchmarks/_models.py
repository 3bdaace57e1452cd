"""The networks the benchmarks compare, built at a given first-level width ("width") and depth ("blocks").

All take 4 input channels and give 3 output logits in 3D (BraTS: 4 MRI modalities → TC, WT, ET).

- ``iunet``, ``iunet-memcnn``, ``iunet-autograd``: :class:`monai_iunet.IUNet` with ``channels = (w, 2w, 4w, 8w)``
  and ``blocks`` couplings per level and side; memory-efficient with the default engine, with memcnn, and with
  ordinary autograd.
- ``iunets``: the paper authors' ``iunets`` package, ``iUNet(w, (blocks,) * 4, dim=3)`` (memory-efficient,
  its defaults: Cayley resampling and channel mixing) between the same linear 1×1 lifting and projection.
- ``unet``, ``checkpoint-unet``: MONAI's ``UNet`` / ``CheckpointUNet`` as in MONAI's tutorials, channels
  ``(w, 2w, 4w, 8w, 16w)``, strides 2, ``num_res_units = blocks``. Its first layer is strided: it never
  convolves at full resolution, so compare it at equal parameters or Dice, not at equal width.
- ``segresnet``: MONAI's ``SegResNet`` in the model-zoo BraTS configuration (``init_filters = w``,
  ``blocks_down = (1, 2, 2, 4)``, ``blocks_up = (1, 1, 1)``, dropout 0.2).
- ``dynunet``: MONAI's ``DynUNet`` as nnU-Net configures it for isotropic 3D (5 levels, 3³ kernels, filters
  ``(w, 2w, 4w, 8w, min(16w, 320))``, instance norm, no deep supervision).
"""

from __future__ import annotations

from torch import nn

__all__ = ["BLOCK_MODELS", "LABELS", "MODELS", "build_model"]

MODELS = (
    "iunet",
    "iunet-memcnn",
    "iunet-autograd",
    "iunets",
    "unet",
    "checkpoint-unet",
    "segresnet",
    "dynunet",
)
#: the models whose depth the ``blocks`` argument sets (the depth-scaling table)
BLOCK_MODELS = ("iunet", "iunet-memcnn", "iunet-autograd", "iunets", "unet")

#: how the reports name the models
LABELS = {
    "iunet": "IUNet (memory-efficient)",
    "iunet-memcnn": 'IUNet engine="memcnn"',
    "iunet-autograd": "IUNet memory_efficient=False",
    "iunets": "iunets 0.1 (memory-efficient)",
    "unet": "MONAI UNet",
    "checkpoint-unet": "MONAI CheckpointUNet",
    "segresnet": "MONAI SegResNet (zoo BraTS)",
    "dynunet": "MONAI DynUNet (nnU-Net)",
}

IN_CHANNELS, OUT_CHANNELS = 4, 3


def _iunets(width: int, blocks: int) -> nn.Module:
    import warnings

    with warnings.catch_warnings():  # memcnn (imported by iunets) installs a global UserWarning filter
        from iunets import iUNet

    core = iUNet(width, (blocks,) * 4, dim=3, verbose=0)
    return nn.Sequential(nn.Conv3d(IN_CHANNELS, width, 1), core, nn.Conv3d(width, OUT_CHANNELS, 1))


def build_model(name: str, width: int = 16, blocks: int = 2) -> nn.Module:
    """Build benchmark model ``name`` (one of :data:`MODELS`) at first-level width ``width``."""
    if name.startswith("iunet") and name != "iunets":
        from monai_iunet import IUNet

        variant = {
            "iunet": dict(memory_efficient=True, engine="default"),
            "iunet-memcnn": dict(memory_efficient=True, engine="memcnn"),
            "iunet-autograd": dict(memory_efficient=False),
        }[name]
        channels = (width, 2 * width, 4 * width, 8 * width)
        return IUNet(3, IN_CHANNELS, OUT_CHANNELS, channels=channels, blocks=blocks, **variant)
    if name == "iunets":
        return _iunets(width, blocks)
    if name in ("unet", "checkpoint-unet"):
        from monai.networks.nets.unet import CheckpointUNet, UNet

        cls = UNet if name == "unet" else CheckpointUNet
        channels = tuple(width * 2**i for i in range(5))
        return cls(3, IN_CHANNELS, OUT_CHANNELS, channels=channels, strides=(2, 2, 2, 2), num_res_units=blocks)
    if name == "segresnet":
        from monai.networks.nets import SegResNet

        return SegResNet(
            spatial_dims=3,
            init_filters=width,
            in_channels=IN_CHANNELS,
            out_channels=OUT_CHANNELS,
            blocks_down=(1, 2, 2, 4),
            blocks_up=(1, 1, 1),
            dropout_prob=0.2,
        )
    if name == "dynunet":
        from monai.networks.nets import DynUNet

        filters = [width, 2 * width, 4 * width, 8 * width, min(16 * width, 320)]
        return DynUNet(
            3,
            IN_CHANNELS,
            OUT_CHANNELS,
            kernel_size=[3] * 5,
            strides=[1, 2, 2, 2, 2],
            upsample_kernel_size=[2] * 4,
            filters=filters,
            norm_name="instance",
            deep_supervision=False,
        )
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}.")
