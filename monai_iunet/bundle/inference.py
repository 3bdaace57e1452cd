"""Inference that loses no case: one case at a time, out-of-memory cases reported, predictions on their own grid.

- :func:`infer_case_by_case` runs the bundle's evaluator on one case after the other, so that a case that does not
  fit in memory is reported (with its size) at the end while the others are still predicted.
- :class:`NiftiWriterOnOwnGrid` is MONAI's ``NibabelWriter`` for predictions already on their input's grid
  (``SaveImaged(resample=False)`` after ``Invertd``): it writes the array with its affine as it is. MONAI's writer
  sends even such arrays through its resampler, which for a squeezed 3D label map of a volume stored
  sagittally or coronally (an affine whose 2×2 top-left block is singular) fails with "Affine ... is not
  invertible".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import DataLoader, NibabelWriter
from monai.utils import convert_data_type
from torch.utils.data import Subset

from monai_iunet.bundle.handlers import quiet_fresh_start
from monai_iunet.progress import showing_progress

__all__ = ["NiftiWriterOnOwnGrid", "infer_case_by_case"]

logger = logging.getLogger(__name__)

_OUT_OF_MEMORY = (MemoryError, torch.OutOfMemoryError)


class NiftiWriterOnOwnGrid(NibabelWriter):
    """``monai.data.NibabelWriter`` that writes without resampling when no target grid is asked for.

    With ``SaveImaged(resample=False)`` MONAI passes no target affine; this writer then keeps the data and its
    affine unchanged (the result MONAI's resampler should give), instead of resampling onto the same grid.
    With a target affine it resamples as ``NibabelWriter`` does.
    """

    @classmethod
    def resample_if_needed(cls, data_array: Any, affine: Any = None, target_affine: Any = None, **kwargs: Any):
        if target_affine is not None or kwargs.get("output_spatial_shape") is not None:
            return super().resample_if_needed(data_array, affine=affine, target_affine=target_affine, **kwargs)
        if affine is None:
            affine = getattr(data_array, "affine", np.eye(4))
        return data_array, convert_data_type(affine, np.ndarray)[0]


def _case_size(item: dict) -> str:
    """The voxel size of a case from its image headers, e.g. ``4 x 240x240x155 voxels (142 MiB as float32)``."""
    files = [item["image"]] if isinstance(item["image"], str) else list(item["image"])
    try:
        shapes = [nib.load(f).shape for f in files]
    except Exception:  # the size is only for the message
        return "size unknown"
    spatial = shapes[0][:3]
    channels = shapes[0][3] if len(shapes[0]) > 3 else len(shapes)
    mib = channels * int(np.prod(spatial)) * 4 / 2**20
    return f"{channels} x {'x'.join(map(str, spatial))} voxels, {mib:.0f} MiB as float32"


def infer_case_by_case(
    evaluator: Any, dataset: Sequence, broken: list[str] | None = None, progress: bool | str | None = None
) -> list[str]:
    """Run ``evaluator`` on each case of ``dataset`` in turn; a case that runs out of memory is skipped and reported.

    A progress bar over the cases shows the time left (at a terminal: :mod:`monai_iunet.progress`).

    Args:
        evaluator: a MONAI evaluator (its handlers load the model and save the predictions).
        dataset: the cases, a dataset of the evaluator's items.
        broken: a list to append one message per failed case to (the bundle's report of broken cases).
        progress: draw the progress bar: ``None`` (``MONAI_IUNET_PROGRESS``, else only at a terminal), ``"on"``,
            ``"off"``, ``"auto"`` or a bool.

    Returns:
        ``broken`` (a new list if none was given), with the out-of-memory cases appended.
    """
    broken = [] if broken is None else broken
    quiet_fresh_start(evaluator, every_resume=True)
    with showing_progress(range(len(dataset)), desc="infer", unit="case", progress=progress) as bar:
        for index in bar:
            _infer_one(evaluator, dataset, index, broken)
    return broken


def _infer_one(evaluator: Any, dataset: Sequence, index: int, broken: list[str]) -> None:
    """Run ``evaluator`` on case ``index`` of ``dataset``; out of memory appends a message to ``broken``."""
    evaluator.data_loader = DataLoader(Subset(dataset, [index]), batch_size=1, num_workers=0)
    evaluator.set_data(evaluator.data_loader)
    evaluator.state.epoch_length = 1
    try:
        evaluator.run()
    except _OUT_OF_MEMORY as e:
        item = dataset.data[index] if hasattr(dataset, "data") else {}
        name = item.get("case", index)
        message = (
            f"case {name}: out of memory ({_case_size(item)}; {type(e).__name__}: {e}); infer it on a machine "
            "with more memory, or with a smaller patch_size"
        )
        logger.error(message)
        broken.append(message)
        # ignite keeps the generator of the run that raised, and its next run() would resume that one (and end
        # at once) instead of starting anew; it has no public reset
        evaluator._internal_run_generator = None
