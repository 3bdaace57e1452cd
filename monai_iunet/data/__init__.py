"""Data for the bundles: datalists for the layouts users have, checks of their files, and synthetic cases."""

from __future__ import annotations

from monai_iunet.data.checks import BrokenCaseError, array_problems, check_case, drop_broken_cases, screen_datalist
from monai_iunet.data.datalist import build_datalist
from monai_iunet.data.dataset import CaseDataset
from monai_iunet.data.layouts import BRATS_LAYOUTS, case_name, detect_layout
from monai_iunet.data.synthetic_brats import (
    MODALITIES,
    TISSUE_INTENSITIES,
    generate_synthetic_brats,
    synthesize_brats_case,
)

__all__ = [
    "BRATS_LAYOUTS",
    "BrokenCaseError",
    "CaseDataset",
    "MODALITIES",
    "TISSUE_INTENSITIES",
    "array_problems",
    "build_datalist",
    "case_name",
    "check_case",
    "detect_layout",
    "drop_broken_cases",
    "generate_synthetic_brats",
    "screen_datalist",
    "synthesize_brats_case",
]
