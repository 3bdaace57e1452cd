"""The BraTS domain, once: modalities, label conventions, tumour regions and dataset layouts, and their evaluation.

Everything else in the package imports these facts from here instead of spelling them as strings.

The BraTS bundle's own helpers are submodules, imported by path (they need ignite and the bundle plumbing):

- :mod:`~monai_iunet.brats.datalist_convention`: the label convention of a training datalist, named or recognised;
- :mod:`~monai_iunet.brats.cases`: the cases of a datalist to infer;
- :mod:`~monai_iunet.brats.metrics`: per-case sensitivities for ``MetricsSaver`` and the per-region metric table;
- :mod:`~monai_iunet.brats.summary`: the last lines of a run (model, scores, where the outputs are).
"""

from __future__ import annotations

from monai_iunet.brats.evaluation import (
    EMPTY_HD95_MM,
    METRICS,
    NSD_TOLERANCE_MM,
    LabelValueError,
    check_label_values,
    evaluate_labels,
    region_metrics,
)
from monai_iunet.brats.labels import (
    BRATS2021,
    BRATS2023,
    CONVENTIONS,
    MSD,
    REGION_ORDER,
    LabelConvention,
    Region,
    TumourPart,
    convert_labels,
    label_convention,
)
from monai_iunet.brats.layouts import (
    BRATS2021_LAYOUT,
    BRATS2023_LAYOUT,
    LAYOUTS,
    MSD_LAYOUT,
    DatasetLayout,
    dataset_layout,
)
from monai_iunet.brats.lesions import BRATS2023_LESION_RULES, LESION_HD95_PENALTY_MM, LesionRule, lesion_metrics
from monai_iunet.brats.modalities import MODALITY_ORDER, Modality, modality

__all__ = [
    "BRATS2023_LESION_RULES",
    "EMPTY_HD95_MM",
    "LESION_HD95_PENALTY_MM",
    "METRICS",
    "NSD_TOLERANCE_MM",
    "LabelValueError",
    "LesionRule",
    "check_label_values",
    "evaluate_labels",
    "lesion_metrics",
    "region_metrics",
    "BRATS2021",
    "BRATS2021_LAYOUT",
    "BRATS2023",
    "BRATS2023_LAYOUT",
    "CONVENTIONS",
    "LAYOUTS",
    "MODALITY_ORDER",
    "MSD",
    "MSD_LAYOUT",
    "REGION_ORDER",
    "DatasetLayout",
    "LabelConvention",
    "Modality",
    "Region",
    "TumourPart",
    "convert_labels",
    "dataset_layout",
    "label_convention",
    "modality",
]
