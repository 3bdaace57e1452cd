"""Label conventions of BraTS label maps, the tumour regions they are scored on, and conversion between them.

A label map marks three tumour parts: necrotic / non-enhancing core, peritumoral edema and enhancing tumour. The
datasets disagree on their values:

======================  ========  =====  =========
convention              necrosis  edema  enhancing
======================  ========  =====  =========
``brats2021`` (2018-21) 1         2      4
``brats2023``           1         2      3
``msd`` (Task01)        2         1      3
======================  ========  =====  =========

The regions the field scores are unions of parts (nested: ET ⊂ TC ⊂ WT): tumour core TC = necrosis ∪ enhancing,
whole tumour WT = all three, enhancing tumour ET = enhancing. Their channel order, TC, WT, ET, is that of MONAI's
``ConvertToMultiChannelBasedOnBratsClasses``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.config import NdarrayOrTensor
from monai.transforms import MapLabelValue
from monai.utils import StrEnum, look_up_option

__all__ = [
    "BRATS2021",
    "BRATS2023",
    "CONVENTIONS",
    "MSD",
    "REGION_ORDER",
    "LabelConvention",
    "Region",
    "TumourPart",
    "convert_labels",
    "label_convention",
]


class TumourPart(StrEnum):
    """A part of the tumour that a label map marks with one value."""

    NECROSIS = "necrosis"
    EDEMA = "edema"
    ENHANCING = "enhancing"


class Region(StrEnum):
    """A BraTS evaluation region; the value is its lower-case abbreviation."""

    TC = "tc"
    WT = "wt"
    ET = "et"

    @property
    def parts(self) -> tuple[TumourPart, ...]:
        """The tumour parts whose union is this region."""
        return _REGION_PARTS[self]

    @property
    def title(self) -> str:
        """``"Tumour core"``, ``"Whole tumour"`` or ``"Enhancing tumour"``."""
        return {"tc": "Tumour core", "wt": "Whole tumour", "et": "Enhancing tumour"}[self.value]


_REGION_PARTS = {
    Region.TC: (TumourPart.NECROSIS, TumourPart.ENHANCING),
    Region.WT: (TumourPart.NECROSIS, TumourPart.EDEMA, TumourPart.ENHANCING),
    Region.ET: (TumourPart.ENHANCING,),
}

REGION_ORDER: tuple[Region, ...] = (Region.TC, Region.WT, Region.ET)
"""The channel order of the networks' three outputs, as MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``."""


@dataclass(frozen=True)
class LabelConvention:
    """The values one label convention gives the tumour parts (0 is background in all of them).

    Args:
        name: the convention's name, as configs write it.
        necrosis: value of the necrotic / non-enhancing tumour core.
        edema: value of the peritumoral edema.
        enhancing: value of the enhancing tumour.
        description: where the convention is used.
    """

    name: str
    necrosis: int
    edema: int
    enhancing: int
    description: str = ""

    @property
    def values(self) -> tuple[int, int, int]:
        """The values of necrosis, edema and enhancing tumour, in that order."""
        return (self.necrosis, self.edema, self.enhancing)

    @property
    def part_values(self) -> dict[TumourPart, int]:
        """``{"necrosis": ..., "edema": ..., "enhancing": ...}``: the value of each tumour part."""
        return {part: self.value(part) for part in TumourPart}

    def value(self, part: TumourPart | str) -> int:
        """The value of one tumour part."""
        return int(getattr(self, str(TumourPart(part))))

    def region_values(self, region: Region | str) -> tuple[int, ...]:
        """The label values whose union is ``region``."""
        return tuple(self.value(p) for p in Region(region).parts)

    def region_masks(self, label: np.ndarray) -> dict[Region, np.ndarray]:
        """Boolean masks of TC, WT and ET (in that order) of a label map in this convention."""
        return {r: np.isin(label, self.region_values(r)) for r in REGION_ORDER}

    def unexpected_values(self, label: np.ndarray) -> list[int]:
        """The values of ``label`` that are neither 0 nor one of this convention's."""
        return sorted(int(v) for v in np.unique(label) if int(v) not in (0, *self.values))


BRATS2021 = LabelConvention("brats2021", 1, 2, 4, "BraTS 2018-2021 challenge labels")
BRATS2023 = LabelConvention("brats2023", 1, 2, 3, "BraTS 2023+ labels (consecutive, as DICOM-SEG writers need)")
MSD = LabelConvention("msd", 2, 1, 3, "Medical Segmentation Decathlon Task01_BrainTumour labels")

CONVENTIONS: dict[str, LabelConvention] = {c.name: c for c in (BRATS2021, BRATS2023, MSD)}
"""Every label convention by name."""


def label_convention(convention: str | LabelConvention) -> LabelConvention:
    """The :class:`LabelConvention` called ``convention`` (case-insensitive); an unknown name lists the choices."""
    if isinstance(convention, LabelConvention):
        return convention
    return CONVENTIONS[look_up_option(str(convention).lower(), tuple(CONVENTIONS))]


def convert_labels(
    label: NdarrayOrTensor, source: str | LabelConvention, target: str | LabelConvention
) -> NdarrayOrTensor:
    """``label`` with its values mapped from the ``source`` convention to the ``target`` one.

    Uses ``monai.transforms.MapLabelValue``; the result has ``label``'s type and shape.

    Examples::

        >>> convert_labels(np.array([0, 1, 2, 4]), "brats2021", "msd").tolist()
        [0, 2, 1, 3]
    """
    src, dst = label_convention(source), label_convention(target)
    if src == dst:
        return label
    return MapLabelValue(orig_labels=list(src.values), target_labels=list(dst.values))(label)
