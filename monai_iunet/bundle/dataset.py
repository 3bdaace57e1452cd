"""The embedded dataset: synthetic BraTS-like cases generated where the bundle's default dataset folder is empty."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from monai_iunet.data.generate import ensure_generated
from monai_iunet.data.synthetic_brats import generate_synthetic_brats

__all__ = ["ensure_dataset"]


def ensure_dataset(dataset_dir: str | os.PathLike, **synthetic: Any) -> str:
    """Return ``dataset_dir``, first writing the synthetic BraTS-like dataset there if it is missing or empty.

    The dataset is written to a temporary sibling folder and renamed into place, so an interrupted generation never
    leaves a partial dataset behind. In a distributed run, rank 0 generates and the other ranks wait for it (see
    :func:`~monai_iunet.data.ensure_generated`).

    Args:
        dataset_dir: the dataset folder.
        synthetic: arguments of :func:`~monai_iunet.data.generate_synthetic_brats` (``num_cases``, ``spatial_size``,
            ``seed``, ``num_unlabeled``, ...).
    """
    generate = partial(generate_synthetic_brats, **synthetic)
    return str(ensure_generated(dataset_dir, generate, description="a synthetic BraTS-like dataset"))
