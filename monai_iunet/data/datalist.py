"""Find the brain-tumour cases in a dataset folder, check them, and split them into training and validation.

Three layouts are recognised:

- **BraTS 2018–2021** challenge folders: ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` and, for labelled cases,
  ``<case>/<case>_seg.nii.gz`` with 1 necrotic / non-enhancing core, 2 edema, 4 enhancing tumour.
- **BraTS 2023**: ``<case>/<case>-{t2f,t1n,t1c,t2w}.nii.gz`` and ``<case>/<case>-seg.nii.gz`` with 1 necrotic core,
  2 edema, 3 enhancing tumour.
- **Medical Segmentation Decathlon Task01_BrainTumour**: ``dataset.json`` with ``imagesTr/*.nii.gz`` 4D images
  (FLAIR, T1w, T1gd, T2w), ``labelsTr/*.nii.gz`` with 1 edema, 2 non-enhancing tumour, 3 enhancing tumour, and
  unlabelled ``imagesTs``.

Every datalist item is a dictionary ``{"image": ..., "label": ..., "case": ...}`` as MONAI datasets take it: the image
is the list of the four modality files in the order FLAIR, T1, T1ce, T2 (BraTS), or the 4D file (MSD). The label
convention of the layout is returned with the lists, so that the bundle maps every convention to the same tumour
core / whole tumour / enhancing tumour channels.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import load_decathlon_datalist

__all__ = [
    "BRATS_LAYOUTS",
    "BrokenCaseError",
    "array_problems",
    "build_datalist",
    "case_name",
    "check_case",
    "detect_layout",
    "drop_broken_cases",
    "screen_datalist",
]

logger = logging.getLogger(__name__)

BRATS_LAYOUTS: dict[str, dict[str, Any]] = {
    "brats2021": {
        "description": "BraTS 2018-2021 folders <case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz",
        "separator": "_",
        "modalities": ("flair", "t1", "t1ce", "t2"),
        "labels": {"necrosis": 1, "edema": 2, "enhancing": 4},
    },
    "brats2023": {
        "description": "BraTS 2023 folders <case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz",
        "separator": "-",
        "modalities": ("t2f", "t1n", "t1c", "t2w"),
        "labels": {"necrosis": 1, "edema": 2, "enhancing": 3},
    },
    "msd": {
        "description": "Medical Segmentation Decathlon Task01_BrainTumour (dataset.json, imagesTr/, labelsTr/)",
        "modalities": ("FLAIR", "T1w", "T1gd", "T2w"),
        "labels": {"necrosis": 2, "edema": 1, "enhancing": 3},
    },
}
"""The recognised layouts: modality names in channel order (FLAIR, T1, T1ce, T2) and label values per region."""

_EXTENSIONS = (".nii.gz", ".nii")
_ADVICE = (
    "Fix or replace the files, move the case folder out of dataset_dir, or pass --skip_broken_cases True to leave "
    "broken cases out with a warning."
)


def _as_bool(value: bool | str | int) -> bool:
    """A flag from a config or the command line, where ``--flag false`` arrives as the string ``"false"``."""
    if isinstance(value, str):
        if value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if value.strip().lower() in ("false", "0", "no", "off", "none", ""):
            return False
        raise ValueError(f"expected a boolean (true/false), got {value!r}.")
    return bool(value)


class BrokenCaseError(ValueError):
    """A case whose files cannot be used; the message names the case, the file and what to do."""


def _strip_extension(name: str) -> str:
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def case_name(path: str | os.PathLike) -> str:
    """The case a file belongs to: its folder's name for BraTS layouts, else the file name without extension.

    Examples::

        >>> case_name("data/BraTS2021_00000/BraTS2021_00000_flair.nii.gz")
        'BraTS2021_00000'
        >>> case_name("Task01_BrainTumour/imagesTs/BRATS_485.nii.gz")
        'BRATS_485'
    """
    path = Path(path)
    stem = _strip_extension(path.name)
    return path.parent.name if path.parent.name and stem.startswith(path.parent.name) else stem


def _find_file(folder: Path, stem: str) -> Path:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever exists (the former if neither does)."""
    for ext in _EXTENSIONS:
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return folder / f"{stem}{_EXTENSIONS[0]}"


def detect_layout(dataset_dir: str | os.PathLike) -> str:
    """The layout of ``dataset_dir``: one of the keys of :data:`BRATS_LAYOUTS`.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist.
        ValueError: no recognised layout, or case folders of both BraTS namings.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset_dir {str(root)!r} does not exist; pass --dataset_dir with the folder holding your cases "
            "(or generate synthetic ones with `monai-iunet generate-brats DIR`)."
        )
    if (root / "dataset.json").is_file():
        return "msd"
    found: dict[str, list[str]] = {"brats2021": [], "brats2023": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for layout in found:
            spec = BRATS_LAYOUTS[layout]
            stems = [f"{folder.name}{spec['separator']}{m}" for m in spec["modalities"]]
            if any(_find_file(folder, s).exists() for s in stems):
                found[layout].append(folder.name)
    if found["brats2021"] and found["brats2023"]:
        raise ValueError(
            f"dataset_dir {str(root)!r} mixes BraTS 2018-2021 naming (e.g. {found['brats2021'][0]}) and BraTS 2023 "
            f"naming (e.g. {found['brats2023'][0]}); keep one naming per dataset_dir."
        )
    for layout, cases in found.items():
        if cases:
            return layout
    raise ValueError(
        f"no brain-tumour cases found in dataset_dir {str(root)!r}. Expected one of: "
        + "; ".join(spec["description"] for spec in BRATS_LAYOUTS.values())
        + "."
    )


def _brats_items(root: Path, layout: str) -> list[dict]:
    spec = BRATS_LAYOUTS[layout]
    sep = spec["separator"]
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = [_find_file(folder, f"{folder.name}{sep}{m}") for m in spec["modalities"]]
        if not any(p.exists() for p in images):
            continue  # not a case folder
        item: dict[str, Any] = {"image": [str(p) for p in images], "case": folder.name}
        label = _find_file(folder, f"{folder.name}{sep}seg")
        if label.exists():
            item["label"] = str(label)
        items.append(item)
    return items


def _msd_labels(description: dict) -> dict[str, int]:
    """Label values per region from the ``labels`` entry of an MSD ``dataset.json`` (defaults to Task01's)."""
    labels = dict(BRATS_LAYOUTS["msd"]["labels"])
    names = {str(v).lower(): int(k) for k, v in description.get("labels", {}).items()}
    for name, value in names.items():
        if "edema" in name:
            labels["edema"] = value
        elif "non-enhancing" in name or "necro" in name:
            labels["necrosis"] = value
        elif "enhancing" in name:
            labels["enhancing"] = value
    return labels


def _msd_items(root: Path) -> tuple[list[dict], dict[str, int]]:
    json_file = root / "dataset.json"
    try:
        description = json.loads(json_file.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{json_file} is not a readable JSON file ({e}); restore the MSD dataset.json.") from e
    items = []
    for key in ("training", "test"):
        if description.get(key):
            for item in load_decathlon_datalist(json_file, is_segmentation=True, data_list_key=key, base_dir=root):
                item["case"] = case_name(item["image"])
                items.append(item)
    if not items:
        raise ValueError(f"{json_file} lists no cases under 'training' or 'test'.")
    return items, _msd_labels(description)


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
    shapes = [img.shape for _, img in images]
    if len(images) == 1:
        if len(shapes[0]) != 4 or shapes[0][3] != num_channels:
            problems.append(
                f"{images[0][0]} has shape {shapes[0]}; expected a 4D image with {num_channels} modalities last, "
                "one per input channel of the network (network_def#in_channels)"
            )
        spatial = shapes[0][:3]
    else:
        if len(images) != num_channels:
            problems.append(
                f"the case has {len(images)} modality files but the network takes {num_channels} input channels "
                "(network_def#in_channels)"
            )
        for (f, _), s in zip(images, shapes):
            if len(s) != 3:
                problems.append(f"{f} has shape {s}; expected a 3D volume")
        spatial = shapes[0]
    reference_file, reference = images[0]
    others = images[1:] + ([label] if label else [])
    for f, img in others:
        if tuple(img.shape[:3]) != tuple(spatial):
            problems.append(f"{f} has spatial shape {img.shape[:3]} but {reference_file} has {tuple(spatial)}")
        elif not np.allclose(img.affine, reference.affine, atol=1e-3):
            problems.append(
                f"{f} has a different affine (voxel-to-world geometry) from {reference_file}; "
                "resample it onto the same grid"
            )
    if problems or not read_data:
        return problems
    for f, img in images + ([label] if label else []):
        try:
            data = np.asanyarray(img.dataobj)
        except Exception as e:
            problems.append(f"{f} is truncated or corrupt ({type(e).__name__}: {e})")
            continue
        if label and f == label[0]:
            if label_values is not None:
                problems += array_problems(data, f, label_values=label_values)
        else:
            problems += array_problems(np.moveaxis(data, -1, 0) if data.ndim == 4 else data, f)
    return problems


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
) -> list[dict]:
    """The usable items of ``items`` (see :func:`check_case`); broken ones raise, or are dropped with a warning.

    Args:
        items: datalist items.
        skip_broken: drop broken cases with a warning listing them instead of raising.
        read_data: read and check the voxels too, not only the headers.
        label_values: values the labels may hold besides 0 (checked with ``read_data``).
        num_channels: number of modalities each case must provide.
        where: where the items come from, for the message.

    Raises:
        BrokenCaseError: listing every broken case, if there are any and ``skip_broken`` is ``False``.
    """
    good, broken = screen_datalist(items, read_data=read_data, label_values=label_values, num_channels=num_channels)
    if broken:
        message = f"{len(broken)} broken case(s){' in ' + where if where else ''}:\n  " + "\n  ".join(broken)
        if not good or not _as_bool(skip_broken):
            raise BrokenCaseError(f"{message}\n{_ADVICE}")
        logger.warning(f"{message}\nThey are left out.")
    return good


def build_datalist(
    dataset_dir: str | os.PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
    skip_broken: bool = False,
    check: bool = True,
    num_channels: int = 4,
    min_labelled: int = 0,
) -> dict[str, Any]:
    """Detect the layout of ``dataset_dir``, check every case's headers and split the labelled cases.

    Labelled cases are shuffled with ``seed`` and ``max(1, round(val_fraction * n))`` of them go to validation;
    unlabelled cases go to ``"testing"`` (inference only). Broken cases (missing or unreadable files, wrong number of
    modalities, shapes or affines that differ between files) raise one error listing them all, or with
    ``skip_broken`` are left out with a warning listing them.

    Args:
        dataset_dir: folder in one of the layouts of :data:`BRATS_LAYOUTS`.
        val_fraction: fraction of labelled cases for validation.
        seed: seed of the split; the same seed and cases give the same split.
        skip_broken: leave broken cases out with a warning instead of raising.
        check: check the cases' headers (``False`` leaves checking to the caller).
        num_channels: number of modalities each case must provide.
        min_labelled: the fewest labelled cases to accept (2 for training: one to train on, one to validate).

    Returns:
        ``{"layout", "labels", "modalities", "training", "validation", "testing"}``: the layout name, its label value
        per region (``{"necrosis", "edema", "enhancing"}``), its modality names in channel order, and three lists of
        datalist items.

    Raises:
        BrokenCaseError: broken cases and ``skip_broken=False``.
        FileNotFoundError, ValueError: no dataset in ``dataset_dir``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    root = Path(dataset_dir)
    layout = detect_layout(root)
    if layout == "msd":
        items, labels = _msd_items(root)
    else:
        items, labels = _brats_items(root, layout), dict(BRATS_LAYOUTS[layout]["labels"])
    if _as_bool(check):
        items = drop_broken_cases(items, skip_broken=skip_broken, num_channels=num_channels, where=repr(str(root)))
    labelled = [item for item in items if "label" in item]
    if len(labelled) < min_labelled:
        raise ValueError(
            f"dataset_dir {str(root)!r} has {len(labelled)} usable labelled case(s); training needs at least "
            f"{min_labelled} (one to train on, one to validate). Add cases with label files."
        )
    order = np.random.default_rng(seed).permutation(len(labelled))
    num_val = max(1, round(val_fraction * len(labelled))) if len(labelled) > 1 else 0
    return {
        "layout": layout,
        "labels": labels,
        "modalities": BRATS_LAYOUTS[layout]["modalities"],
        "training": [labelled[i] for i in sorted(order[num_val:])],
        "validation": [labelled[i] for i in sorted(order[:num_val])],
        "testing": [item for item in items if "label" not in item],
    }
