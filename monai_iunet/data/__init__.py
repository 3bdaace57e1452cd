"""Data for the bundles: datalists for the layouts users have, checks of their files, and synthetic cases."""

from __future__ import annotations

from monai_iunet.data.checks import (
    BROKEN_CASE_ADVICE,
    BrokenCaseError,
    array_problems,
    check_case,
    drop_broken_cases,
    screen_datalist,
)
from monai_iunet.data.datalist import build_datalist
from monai_iunet.data.dataset import CaseDataset
from monai_iunet.data.generate import ensure_generated, is_missing_or_empty
from monai_iunet.data.layouts import case_name, detect_layout, find_cases
from monai_iunet.data.synthetic_brats import generate_synthetic_brats, synthesize_brats_case
from monai_iunet.data.synthetic_tissue import TISSUE_INTENSITIES

__all__ = [
    "BROKEN_CASE_ADVICE",
    "BrokenCaseError",
    "CaseDataset",
    "TISSUE_INTENSITIES",
    "array_problems",
    "build_datalist",
    "case_name",
    "check_case",
    "detect_layout",
    "drop_broken_cases",
    "find_cases",
    "ensure_generated",
    "generate_synthetic_brats",
    "is_missing_or_empty",
    "screen_datalist",
    "synthesize_brats_case",
]
