"""Checks of a case's files before training or inference: headers, shapes, geometry, voxel values."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import nibabel as nib
import numpy as np
from monai.utils import str2bool

from monai_iunet.errors import UserInputError

__all__ = [
    "BROKEN_CASE_ADVICE",
    "BrokenCaseError",
    "array_problems",
    "check_case",
    "drop_broken_cases",
    "screen_datalist",
]

logger = logging.getLogger(__name__)

BROKEN_CASE_ADVICE = (
    "Fix or replace the files, move the case out of the dataset folder, or pass skip_broken=True to leave broken "
    "cases out with a warning."
)
"""What a :class:`BrokenCaseError` tells the user to do. Callers with their own option names (a bundle's
``--skip_broken_cases``) pass their wording as ``advice``."""


class BrokenCaseError(UserInputError):
    """A case whose files cannot be used; the message names the case, the file and what to do."""


def array_problems(
    array: np.ndarray, what: str, label_values: Iterable[int] | None = None, channel_names: Sequence[str] = ()
) -> list[str]:
    """What is wrong with the voxel values of one image or label array (empty list if nothing).

    Args:
        array: the voxels; for images, channel first (one channel per modality).
        what: how to name the array in the messages (e.g. its file name).
        label_values: for a label, the values it may hold besides 0; ``None`` for an image.
        channel_names: names of the image channels, for the messages.
    """
    array = np.asarray(array)
    if label_values is not None:
        allowed = {0, *(int(v) for v in label_values)}
        values = np.unique(array)
        unexpected = [
            int(v) if np.isfinite(v) and float(v).is_integer() else float(v)
            for v in values
            if not np.isfinite(v) or v not in allowed
        ]
        if unexpected:
            return [
                f"{what} holds unexpected label values {unexpected[:10]}; this layout uses {sorted(allowed)}. "
                "Check that the label file belongs to this dataset's convention"
            ]
        return []
    problems = []
    channels = array if array.ndim == 4 else array[None]
    for i, channel in enumerate(channels):
        name = what
        if len(channels) > 1:
            name += f" channel {i}" + (f" ({channel_names[i]})" if i < len(channel_names) else "")
        bad = np.count_nonzero(~np.isfinite(channel))
        if bad:
            problems.append(f"{name} holds {bad} NaN/Inf voxels")
        elif not np.any(channel):
            problems.append(f"{name} is all zero (an empty or failed export?)")
    return problems


def _header(path: str, problems: list[str]) -> Any | None:
    if not os.path.exists(path):
        problems.append(f"{path} is missing")
        return None
    try:
        return nib.load(path)
    except Exception as e:  # nibabel raises many types for corrupt headers
        problems.append(f"{path} is not a readable NIfTI file ({type(e).__name__}: {e})")
        return None


def _shape_problems(images: list[tuple[str, Any]], num_channels: int) -> tuple[list[str], tuple[int, ...]]:
    """Problems with the image files' shapes (one 4D file, or one 3D file per modality), and the spatial shape."""
    problems = []
    shapes = [img.shape for _, img in images]
    if len(images) == 1:
        if len(shapes[0]) != 4 or shapes[0][3] != num_channels:
            problems.append(
                f"{images[0][0]} has shape {shapes[0]}; expected a 4D image with {num_channels} modalities last, "
                "one per input channel of the network"
            )
        return problems, tuple(shapes[0][:3])
    if len(images) != num_channels:
        problems.append(
            f"the case has {len(images)} modality files but the network takes {num_channels} input channels"
        )
    problems += [f"{f} has shape {s}; expected a 3D volume" for (f, _), s in zip(images, shapes) if len(s) != 3]
    return problems, tuple(shapes[0])


def _grid_problems(files: list[tuple[str, Any]], spatial: tuple[int, ...]) -> list[str]:
    """Problems with the files after the first: a spatial shape or an affine that differs from the first file's."""
    (reference_file, reference), problems = files[0], []
    for f, img in files[1:]:
        if tuple(img.shape[:3]) != spatial:
            problems.append(f"{f} has spatial shape {img.shape[:3]} but {reference_file} has {spatial}")
        elif not np.allclose(img.affine, reference.affine, atol=1e-3):
            problems.append(
                f"{f} has a different affine (voxel-to-world geometry) from {reference_file}; "
                "resample it onto the same grid"
            )
    return problems


def _voxel_problems(
    images: list[tuple[str, Any]], label: tuple[str, Any] | None, label_values: Iterable[int] | None
) -> list[str]:
    """Problems with the voxels: unreadable data, NaN/Inf or all-zero images, unexpected label values."""
    problems = []
    for f, img in images + ([label] if label else []):
        try:
            data = np.asanyarray(img.dataobj)
        except MemoryError:
            mib = int(np.prod(img.shape)) * img.get_data_dtype().itemsize / 2**20
            problems.append(f"{f} does not fit in memory ({'x'.join(map(str, img.shape))} voxels, {mib:.0f} MiB)")
            continue
        except Exception as e:
            problems.append(f"{f} is truncated or corrupt ({type(e).__name__}: {e})")
            continue
        if label and f == label[0]:
            if label_values is not None:
                problems += array_problems(data, f, label_values=label_values)
        else:
            problems += array_problems(np.moveaxis(data, -1, 0) if data.ndim == 4 else data, f)
    return problems


def check_case(
    item: dict, read_data: bool = False, label_values: Iterable[int] | None = None, num_channels: int = 4
) -> list[str]:
    """Check one datalist item's files; returns the problems found, each naming its file (empty if none).

    Without ``read_data`` only the NIfTI headers are read (fast): files exist and open, the image has
    ``num_channels`` modalities, and all files agree in shape and affine. With ``read_data`` the voxels are read too:
    truncated or corrupt data, NaN/Inf voxels, all-zero images and (given ``label_values``) unexpected label values.

    Args:
        item: ``{"image": path or list of paths, "label": path (optional), "case": name}``.
        read_data: also read and check the voxels.
        label_values: values the label may hold besides 0.
        num_channels: the number of modalities the image must provide.
    """
    problems: list[str] = []
    image_files = [item["image"]] if isinstance(item["image"], (str, os.PathLike)) else list(item["image"])
    images = [(str(f), _header(str(f), problems)) for f in image_files]
    label = (str(item["label"]), _header(str(item["label"]), problems)) if "label" in item else None
    if problems:
        return problems
    problems, spatial = _shape_problems(images, num_channels)
    problems += _grid_problems(images + ([label] if label else []), spatial)
    if problems or not read_data:
        return problems
    return _voxel_problems(images, label, label_values)


def screen_datalist(
    items: Sequence[dict],
    read_data: bool = False,
    label_values: Iterable[int] | None = None,
    num_channels: int = 4,
) -> tuple[list[dict], list[str]]:
    """Split ``items`` into the usable ones and one message per broken case (see :func:`check_case`)."""
    good, broken = [], []
    for item in items:
        problems = check_case(item, read_data=read_data, label_values=label_values, num_channels=num_channels)
        if problems:
            broken.append(f"case {item.get('case', '?')}: " + "; ".join(problems))
        else:
            good.append(item)
    return good, broken


def drop_broken_cases(
    items: Sequence[dict],
    skip_broken: bool = False,
    read_data: bool = False,
    label_values: Iterable[int] | None = None,
    num_channels: int = 4,
    where: str = "",
    advice: str = BROKEN_CASE_ADVICE,
) -> list[dict]:
    """The usable items of ``items`` (see :func:`check_case`); broken ones raise, or are dropped with a warning.

    Args:
        items: datalist items.
        skip_broken: drop broken cases with a warning listing them instead of raising.
        read_data: read and check the voxels too, not only the headers.
        label_values: values the labels may hold besides 0 (checked with ``read_data``).
        num_channels: number of modalities each case must provide.
        where: where the items come from, for the message.
        advice: what the error tells the user to do (default :data:`BROKEN_CASE_ADVICE`).

    Raises:
        BrokenCaseError: listing every broken case, if there are any and ``skip_broken`` is ``False``.
    """
    good, broken = screen_datalist(items, read_data=read_data, label_values=label_values, num_channels=num_channels)
    if broken:
        message = f"{len(broken)} broken case(s){' in ' + where if where else ''}:\n  " + "\n  ".join(broken)
        if not good and str2bool(skip_broken):  # skipping is on already: nothing would be left
            raise BrokenCaseError(
                f"{message}\nEvery case is broken, so none is left to use; fix or replace the files listed above."
            )
        if not str2bool(skip_broken):
            raise BrokenCaseError(f"{message}\n{advice}")
        logger.warning(f"{message}\nThey are left out.")
    return good
