"""The embedded dataset: synthetic BraTS-like cases generated where the bundle's default dataset folder is empty."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from monai_iunet.data.synthetic_brats import generate_synthetic_brats

__all__ = ["ensure_dataset"]

logger = logging.getLogger(__name__)


def ensure_dataset(dataset_dir: str | os.PathLike, **synthetic: Any) -> str:
    """Return ``dataset_dir``, first writing the synthetic BraTS-like dataset there if it is missing or empty.

    The dataset is written to a temporary sibling folder and renamed into place, so an interrupted generation never
    leaves a partial dataset behind. In a distributed run, rank 0 generates and the other ranks wait for it.

    Args:
        dataset_dir: the dataset folder.
        synthetic: arguments of :func:`~monai_iunet.data.generate_synthetic_brats` (``num_cases``, ``spatial_size``,
            ``seed``, ``num_unlabeled``, ...).
    """
    path = Path(dataset_dir)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    is_writer = not distributed or torch.distributed.get_rank() == 0
    if is_writer and (not path.exists() or not any(path.iterdir())):
        logger.info(f"dataset_dir {str(path)!r} is missing or empty: generating a synthetic BraTS-like dataset there.")
        partial = path.parent / f".{path.name}.partial-{os.getpid()}"
        generate_synthetic_brats(partial, **synthetic)
        if path.exists():
            path.rmdir()
        os.replace(partial, path)
    if distributed:
        torch.distributed.barrier()
    return str(path)
