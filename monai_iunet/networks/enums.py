"""The string options of the invertible layers and networks, as in ``monai.utils.enums``.

Each option is a :class:`~monai.utils.StrEnum`: a member compares equal to its value, so configs keep writing
plain strings (``"resampling_method": "cayley"``). :func:`resolve_option` turns a user's value into a member
with :func:`monai.utils.look_up_option`, whose error lists the choices.
"""

from __future__ import annotations

from enum import EnumMeta
from typing import Any

from monai.utils import StrEnum, look_up_option

__all__ = ["BackpropEngine", "OrthogonalMethod", "PaddingMode", "ResamplingInit", "resolve_option"]


class OrthogonalMethod(StrEnum):
    """How a skew-symmetric matrix is mapped into SO(n), see :func:`~monai_iunet.networks.blocks.orthogonal_matrix`."""

    EXP = "exp"  # matrix exponential
    CAYLEY = "cayley"  # Cayley transform


class ResamplingInit(StrEnum):
    """Named initialisations of the invertible up/downsampling (a tensor ``theta`` may be given instead)."""

    HAAR = "haar"  # the N-D Haar transform (the DCT-II along axes with strides other than 1 and 2)
    PIXEL_SHUFFLE = "pixel_shuffle"  # the identity matrix: space-to-depth


class BackpropEngine(StrEnum):
    """Which memory-efficient engine trains :class:`~monai_iunet.networks.nets.InvertibleUNet`."""

    DEFAULT = "default"  # this package's engine, monai_iunet.engine
    MEMCNN = "memcnn"  # memcnn's InvertibleModuleWrapper around each block, as in the paper


class PaddingMode(StrEnum):
    """How :class:`~monai_iunet.networks.nets.InvertibleUNet` pads inputs not divisible by its total stride."""

    CONSTANT = "constant"
    REFLECT = "reflect"
    REPLICATE = "replicate"


def resolve_option(value: Any, supported: EnumMeta, name: str) -> Any:
    """``value`` (a member, or its value in any case) as a member of ``supported``.

    Args:
        value: the user's choice, e.g. ``"Cayley"`` or ``OrthogonalMethod.CAYLEY``.
        supported: the enum of the choices.
        name: the argument's name, for the error.

    Raises:
        ValueError: naming the argument and listing the choices (:func:`monai.utils.look_up_option`).
    """
    try:
        return look_up_option(str(value).lower(), supported)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
