"""The four MRI modalities a BraTS network reads, in one canonical channel order.

The channel order is the one of the BraTS challenge files and of the Medical Segmentation Decathlon's 4D images:
FLAIR, T1, T1ce (post-contrast T1), T2. Every datalist, generator and clinical pipeline stacks the modalities in
this order; the file-name spelling of each dataset layout is kept in :mod:`monai_iunet.brats.layouts`.
"""

from __future__ import annotations

from monai.utils import StrEnum, look_up_option

__all__ = ["MODALITY_ORDER", "Modality", "modality"]


class Modality(StrEnum):
    """An MRI modality; the value is its BraTS 2018-2021 file-name spelling."""

    FLAIR = "flair"
    T1 = "t1"
    T1CE = "t1ce"
    T2 = "t2"

    @property
    def title(self) -> str:
        """The name people write: ``"FLAIR"``, ``"T1"``, ``"T1ce"``, ``"T2"``."""
        return {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}[self.value]


MODALITY_ORDER: tuple[Modality, ...] = (Modality.FLAIR, Modality.T1, Modality.T1CE, Modality.T2)
"""The channel order of every 4-channel BraTS volume in this package."""


def modality(name: str | Modality) -> Modality:
    """The :class:`Modality` called ``name`` (case-insensitive); a wrong name gets an error listing the choices."""
    return Modality(look_up_option(str(name).lower(), [m.value for m in Modality]))
