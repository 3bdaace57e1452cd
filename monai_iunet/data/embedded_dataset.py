"""The embedded dataset: synthetic BraTS-like cases generated where the bundle's default dataset folder is empty."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from monai.utils import ensure_tuple_rep, str2bool

from monai_iunet.data.generate import ensure_generated, is_missing_or_empty
from monai_iunet.data.synthetic_brats import generate_synthetic_brats
from monai_iunet.errors import InputNotFoundError

__all__ = ["ensure_dataset"]


def ensure_dataset(
    dataset_dir: str | os.PathLike,
    generate: bool | str = True,
    default_dir: str | os.PathLike | None = None,
    **synthetic: Any,
) -> str:
    """Return ``dataset_dir``, first writing the synthetic BraTS-like dataset there if it is missing or empty.

    Only where ``generate`` is true (the bundles: ``dataset_dir`` is the default location ``default_dir``, or
    ``--synthetic#generate True`` was given): a mistyped ``--dataset_dir`` is an error naming it, never a folder
    of synthetic cases trained on without a word.

    The dataset is written to a temporary sibling folder and renamed into place, so an interrupted generation never
    leaves a partial dataset behind. In a distributed run, rank 0 generates and the other ranks wait for it (see
    :func:`~monai_iunet.data.ensure_generated`).

    Args:
        dataset_dir: the dataset folder.
        generate: whether to generate the synthetic dataset where ``dataset_dir`` is missing or empty; ``"auto"``
            generates only when ``dataset_dir`` is ``default_dir``.
        default_dir: the default dataset folder, for ``generate="auto"`` and the message.
        synthetic: arguments of :func:`~monai_iunet.data.generate_synthetic_brats` (``num_cases``, ``spatial_size``,
            ``seed``, ``num_unlabeled``, ...).
    """
    if str(generate).lower() == "auto":
        generate = default_dir is not None and os.path.abspath(dataset_dir) == os.path.abspath(default_dir)
    if not str2bool(generate):
        if is_missing_or_empty(dataset_dir):
            default = f" at {str(default_dir)!r}" if default_dir is not None else ""
            raise InputNotFoundError(
                f"dataset folder {str(dataset_dir)!r} does not exist or is empty; check the path, leave out "
                f"--dataset_dir to train on the synthetic demo data{default}, or pass --synthetic#generate True "
                "to write synthetic cases there."
            )
        return str(dataset_dir)
    generate_fn = partial(generate_synthetic_brats, **synthetic)
    size = "x".join(str(s) for s in ensure_tuple_rep(synthetic.get("spatial_size", 64), 3))
    description = f"a synthetic BraTS-like dataset ({synthetic.get('num_cases', 10)} cases of {size} voxels)"
    return str(ensure_generated(dataset_dir, generate_fn, description=description))
