"""The label convention of a training datalist: named in the config, or recognised from the items themselves.

The bundles read labels in any of :data:`~monai_iunet.transforms.LABEL_CONVENTIONS`. With ``label_convention``
``"auto"`` the convention follows from the datalist items, so that a datalist handed over by another program
(MONAI Label overrides ``train#dataset#data``) needs no dataset folder: an item whose image is one 4D file is a
Decathlon Task01 case (MSD labels), one whose modality files are named ``-t1c`` / ``-seg`` a BraTS 2023 case, any
other a BraTS 2018-2021 case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monai_iunet.errors import UserInputError
from monai_iunet.transforms import LABEL_CONVENTIONS, brats_label_values

__all__ = ["detect_label_convention", "label_values"]

REGION_ORDER = ("necrosis", "edema", "enhancing")


def detect_label_convention(items: Sequence[Mapping]) -> str:
    """The label convention of datalist ``items`` (see the module docstring); ``"brats2021"`` if there are none."""
    for item in items:
        image = item.get("image")
        if isinstance(image, str):
            return "msd"
        if image:
            names = " ".join(str(f) for f in [*image, item.get("label", "")])
            return "brats2023" if "-seg." in names or "-t1c." in names else "brats2021"
    return "brats2021"


def label_values(label_convention: str = "auto", items: Sequence[Mapping] | None = None) -> list[int]:
    """The label values of necrotic core, edema and enhancing tumour, in that order.

    Args:
        label_convention: one of :data:`~monai_iunet.transforms.LABEL_CONVENTIONS`, or ``"auto"`` to recognise it
            from ``items``.
        items: the training datalist items, for ``"auto"``.
    """
    convention = str(label_convention).lower()
    if convention == "auto":
        convention = detect_label_convention(items or [])
    elif convention not in LABEL_CONVENTIONS:
        raise UserInputError(
            f"label_convention must be 'auto' or one of {LABEL_CONVENTIONS}, got {label_convention!r}."
        )
    values = brats_label_values(convention)
    return [values[region] for region in REGION_ORDER]
