"""Build the datalist of a dataset folder: find its cases, check them, split the labelled ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import str2bool

from monai_iunet.data.checks import BROKEN_CASE_ADVICE, drop_broken_cases
from monai_iunet.data.layouts import find_cases
from monai_iunet.errors import UserInputError

__all__ = ["build_datalist"]


def build_datalist(
    dataset_dir: str | os.PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
    skip_broken: bool = False,
    check: bool = True,
    num_channels: int = 4,
    min_labelled: int = 0,
    advice: str = BROKEN_CASE_ADVICE,
) -> dict[str, Any]:
    """Detect the layout of ``dataset_dir``, check every case's headers and split the labelled cases.

    Labelled cases are shuffled with ``seed`` and ``max(1, round(val_fraction * n))`` of them go to validation;
    unlabelled cases go to ``"testing"`` (inference only). Broken cases (missing or unreadable files, wrong number of
    modalities, shapes or affines that differ between files) raise one error listing them all, or with
    ``skip_broken`` are left out with a warning listing them.

    Args:
        dataset_dir: folder in one of the layouts of :data:`~monai_iunet.brats.LAYOUTS`.
        val_fraction: fraction of labelled cases for validation.
        seed: seed of the split; the same seed and cases give the same split.
        skip_broken: leave broken cases out with a warning instead of raising.
        check: check the cases' headers (``False`` leaves checking to the caller).
        num_channels: number of modalities each case must provide.
        min_labelled: the fewest labelled cases to accept (2 for training: one to train on, one to validate).
        advice: what the error about broken cases tells the user to do (default
            :data:`~monai_iunet.data.checks.BROKEN_CASE_ADVICE`).

    Returns:
        ``{"layout", "labels", "modalities", "training", "validation", "testing"}``: the layout name, its label value
        per region (``{"necrosis", "edema", "enhancing"}``), its modality names in channel order, and three lists of
        datalist items.

    Raises:
        BrokenCaseError: broken cases and ``skip_broken=False``.
        FileNotFoundError, ValueError: no dataset in ``dataset_dir``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserInputError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    root = Path(dataset_dir)
    layout, items, convention = find_cases(root)
    if str2bool(check):
        items = drop_broken_cases(
            items, skip_broken=skip_broken, num_channels=num_channels, where=repr(str(root)), advice=advice
        )
    labelled = [item for item in items if "label" in item]
    if len(labelled) < min_labelled:
        raise UserInputError(
            f"dataset folder {str(root)!r} has {len(labelled)} usable labelled case(s); training needs at least "
            f"{min_labelled} (one to train on, one to validate). Add cases with label files."
        )
    # not monai.data.partition_dataset: it shuffles with NumPy's legacy RandomState, which for the same seed gives a
    # different split from the one every trained model and quoted metric of the bundles was made with
    order = np.random.default_rng(seed).permutation(len(labelled))
    num_val = max(1, round(val_fraction * len(labelled))) if len(labelled) > 1 else 0
    return {
        "layout": layout.name,
        "labels": {str(part): value for part, value in convention.part_values.items()},
        "modalities": layout.modality_names,
        "training": [labelled[i] for i in sorted(order[num_val:])],
        "validation": [labelled[i] for i in sorted(order[:num_val])],
        "testing": [item for item in items if "label" not in item],
    }
