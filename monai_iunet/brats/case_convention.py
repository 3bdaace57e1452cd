"""One datastore, one label convention: the convention a case's labels are read and written in.

Training recognises a datalist's convention from its items (:func:`~monai_iunet.brats.datalist_convention.
detect_label_convention`); inference must write predictions in the same convention for the same data, so that a
corrected prediction saved as a label (MONAI Label's annotate → train loop) trains the regions it shows. The rule,
on the loaded image:

- one 4D file (Decathlon Task01, a MONAI Label datastore) or an image given in memory (MONAI Deploy): ``msd``
  (2 necrosis, 1 edema, 3 enhancing; consecutive values, as DICOM-SEG writers need);
- separate modality files named as BraTS 2023 (``-t1c``, ``-t2f``, ...): ``brats2023``;
- other separate modality files (BraTS 2018-2021 folders): ``brats2021``.

A label whose values belong to another convention than its dataset's is an error
(:class:`~monai_iunet.errors.LabelConventionError`), not a broken case to skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_iunet.brats.labels import CONVENTIONS, MSD, LabelConvention
from monai_iunet.brats.layouts import BRATS2021_LAYOUT, BRATS2023_LAYOUT
from monai_iunet.errors import LabelConventionError

__all__ = ["case_label_convention", "check_label_convention", "describe_convention"]


def case_label_convention(image) -> LabelConvention:
    """The label convention of the case ``image`` was loaded from (see the module docstring).

    Args:
        image: the loaded image, ``(4, *spatial)``; a MONAI ``MetaTensor`` whose ``meta`` holds ``filename_or_obj``
            and ``original_channel_dim`` as ``LoadImage`` writes them, or an array without metadata (in memory).
    """
    meta = getattr(image, "meta", None) or {}
    filename = str(meta.get("filename_or_obj") or "")
    if not filename or meta.get("original_channel_dim") not in (0, "0"):
        return MSD  # one 4D file (its channels are its last dimension) or an image given in memory
    stem = Path(filename).name.split(".")[0]
    if any(stem.endswith(f"{BRATS2023_LAYOUT.separator}{m}") for m in BRATS2023_LAYOUT.modality_names):
        return BRATS2023_LAYOUT.convention
    return BRATS2021_LAYOUT.convention


def describe_convention(convention: LabelConvention) -> str:
    """``"brats2021 (1 necrosis, 2 edema, 4 enhancing)"``, for messages."""
    return (
        f"{convention.name} ({convention.necrosis} necrosis, {convention.edema} edema, "
        f"{convention.enhancing} enhancing)"
    )


def check_label_convention(label: np.ndarray, expected: Sequence[int], name: str) -> None:
    """Raise :class:`LabelConventionError` when ``label`` is written in another convention than ``expected``.

    Args:
        label: a label map.
        expected: the values of necrosis, edema and enhancing tumour of the dataset's convention.
        name: the label's file, for the message.
    """
    values = {int(v) for v in np.unique(np.asarray(label))} - {0}
    if values <= set(int(v) for v in expected):
        return
    others = [c for c in CONVENTIONS.values() if values <= set(c.values) and list(c.values) != list(expected)]
    if not others:
        return  # not another convention's values: a broken label, which the case checks report
    ours = [c for c in CONVENTIONS.values() if list(c.values) == list(expected)]
    theirs = " or ".join(describe_convention(c) for c in others)
    mine = " / ".join(describe_convention(c) for c in ours) or f"values {list(expected)}"
    raise LabelConventionError(
        f"{name} holds label values {sorted(values)}: the {theirs} convention, but this dataset's labels are "
        f"{mine}. Write the label in the dataset's convention (monai_iunet.brats.convert_labels), or keep one "
        "convention per datastore: the bundle's inference writes msd for 4D images, brats2021/brats2023 for "
        "BraTS folders."
    )
