"""The label convention of a training datalist: named in the config, or recognised from the items themselves.

The bundles read labels in any of :data:`~monai_iunet.brats.CONVENTIONS`. With ``label_convention`` ``"auto"`` the
convention follows from the datalist items, so that a datalist handed over by another program (MONAI Label
overrides ``train#dataset#data``) needs no dataset folder: an item whose image is one 4D file is a Decathlon Task01
case (MSD labels), one whose files are named as in another :data:`~monai_iunet.brats.LAYOUTS` entry (BraTS 2023:
``-t1c``, ``-seg``, ...) a case of that layout, any other a BraTS 2018-2021 case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from monai_iunet.brats.labels import CONVENTIONS
from monai_iunet.brats.layouts import BRATS2021_LAYOUT, LAYOUTS, MSD_LAYOUT, DatasetLayout
from monai_iunet.errors import UserInputError

__all__ = ["AUTO", "detect_label_convention", "label_values"]

AUTO = "auto"
"""The ``label_convention`` that recognises the convention from the datalist items."""


def _names_files_as(layout: DatasetLayout, stems: set[str]) -> bool:
    """Whether any of the file-name ``stems`` ends as ``layout`` names a modality or label file."""
    endings = tuple(f"{layout.separator}{name}" for name in (*layout.modality_names, layout.label_name))
    return any(stem.endswith(endings) for stem in stems)


def _item_layout(item: Mapping) -> DatasetLayout:
    """The layout that a datalist item's file names follow (BraTS 2018-2021 if they follow none)."""
    image = item["image"]
    if isinstance(image, str):
        return MSD_LAYOUT
    stems = {Path(str(f)).name.removesuffix(".gz").removesuffix(".nii") for f in [*image, item.get("label", "")]}
    folder_layouts = [x for x in LAYOUTS.values() if x not in (MSD_LAYOUT, BRATS2021_LAYOUT)]
    return next((x for x in folder_layouts if _names_files_as(x, stems)), BRATS2021_LAYOUT)


def detect_label_convention(items: Sequence[Mapping]) -> str:
    """The name of the label convention of datalist ``items`` (see the module docstring); ``"brats2021"`` if none."""
    item = next((item for item in items if item.get("image")), None)
    return (BRATS2021_LAYOUT if item is None else _item_layout(item)).convention.name


def label_values(label_convention: str = AUTO, items: Sequence[Mapping] | None = None) -> list[int]:
    """The label values of necrotic core, edema and enhancing tumour, in that order.

    Args:
        label_convention: the name of one of :data:`~monai_iunet.brats.CONVENTIONS`, or ``"auto"`` to
            recognise it from ``items``.
        items: the training datalist items, for ``"auto"``.
    """
    name = str(label_convention).lower()
    if name == AUTO:
        name = detect_label_convention(items or [])
    elif name not in CONVENTIONS:
        raise UserInputError(
            f"label_convention must be {AUTO!r} or one of {tuple(CONVENTIONS)}, got {label_convention!r}."
        )
    return list(CONVENTIONS[name].values)
