"""Shared test data of tests/clinical: a bundle copy with (untrained, randomised) weights, synthetic exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from bundle_weights import write_random_weights

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet"


def make_bundle_with_weights(root: Path) -> Path:
    """Copy the BraTS bundle's configs to ``root`` and write ``models/model.pt`` for its ``network_def``: the
    network moved away from its identity initialisation, so that it predicts some tumour (not a trained model)."""
    shutil.copytree(BUNDLE / "configs", root / "configs")
    write_random_weights(root)
    return root


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation of two arrays within ``mask``."""
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def read_array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
