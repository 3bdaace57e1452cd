"""The dataset layouts BraTS data come in: file naming, modality spelling and label convention of each."""

from __future__ import annotations

from dataclasses import dataclass

from monai.utils import look_up_option

from monai_iunet.brats.labels import BRATS2021, BRATS2023, MSD, LabelConvention
from monai_iunet.brats.modalities import MODALITY_ORDER, Modality

__all__ = ["BRATS2021_LAYOUT", "BRATS2023_LAYOUT", "LAYOUTS", "MSD_LAYOUT", "DatasetLayout", "dataset_layout"]


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset layout names its files.

    Args:
        name: the layout's name (``"brats2021"``, ``"brats2023"``, ``"msd"``).
        description: the layout in a phrase, for messages.
        convention: the label convention of its label maps.
        modality_names: the spelling of FLAIR, T1, T1ce and T2, in :data:`~monai_iunet.brats.MODALITY_ORDER`.
        separator: between case name and modality in BraTS file names (``""`` for MSD's 4D images).
        label_name: the label file's suffix after the separator (``"seg"``), ``""`` for MSD.
    """

    name: str
    description: str
    convention: LabelConvention
    modality_names: tuple[str, str, str, str]
    separator: str = ""
    label_name: str = ""

    def modality_name(self, modality: Modality | str) -> str:
        """This layout's spelling of ``modality``."""
        return self.modality_names[MODALITY_ORDER.index(Modality(modality))]

    def file_stems(self, case: str) -> tuple[str, ...]:
        """The four modality file names of ``case`` without extension, in channel order (BraTS layouts)."""
        return tuple(f"{case}{self.separator}{m}" for m in self.modality_names)

    def label_stem(self, case: str) -> str:
        """The label file name of ``case`` without extension (BraTS layouts)."""
        return f"{case}{self.separator}{self.label_name}"


BRATS2021_LAYOUT = DatasetLayout(
    "brats2021",
    "BraTS 2018-2021 folders <case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz",
    BRATS2021,
    ("flair", "t1", "t1ce", "t2"),
    separator="_",
    label_name="seg",
)
BRATS2023_LAYOUT = DatasetLayout(
    "brats2023",
    "BraTS 2023 folders <case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz",
    BRATS2023,
    ("t2f", "t1n", "t1c", "t2w"),
    separator="-",
    label_name="seg",
)
MSD_LAYOUT = DatasetLayout(
    "msd",
    "Medical Segmentation Decathlon Task01_BrainTumour (dataset.json, imagesTr/, labelsTr/)",
    MSD,
    ("FLAIR", "T1w", "T1gd", "T2w"),
)

LAYOUTS: dict[str, DatasetLayout] = {x.name: x for x in (BRATS2021_LAYOUT, BRATS2023_LAYOUT, MSD_LAYOUT)}
"""Every recognised layout by name."""


def dataset_layout(name: str | DatasetLayout) -> DatasetLayout:
    """The :class:`DatasetLayout` called ``name``; an unknown name lists the choices."""
    if isinstance(name, DatasetLayout):
        return name
    return LAYOUTS[look_up_option(str(name).lower(), tuple(LAYOUTS))]
