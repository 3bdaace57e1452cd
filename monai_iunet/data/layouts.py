"""The dataset layouts users have, and how to find the cases in a folder of one.

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
import os
from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

from monai_iunet.errors import InputNotFoundError, UserInputError

__all__ = ["BRATS_LAYOUTS", "case_name", "detect_layout", "find_cases"]

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
        raise InputNotFoundError(
            f"dataset folder {str(root)!r} does not exist; give the folder that holds your cases "
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
        raise UserInputError(
            f"dataset_dir {str(root)!r} mixes BraTS 2018-2021 naming (e.g. {found['brats2021'][0]}) and BraTS 2023 "
            f"naming (e.g. {found['brats2023'][0]}); keep one naming per dataset_dir."
        )
    for layout, cases in found.items():
        if cases:
            return layout
    raise UserInputError(
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
        raise UserInputError(f"{json_file} is not a readable JSON file ({e}); restore the MSD dataset.json.") from e
    items = []
    for key in ("training", "test"):
        if description.get(key):
            for item in load_decathlon_datalist(json_file, is_segmentation=True, data_list_key=key, base_dir=root):
                item["case"] = case_name(item["image"])
                items.append(item)
    if not items:
        raise UserInputError(f"{json_file} lists no cases under 'training' or 'test'.")
    return items, _msd_labels(description)


def find_cases(dataset_dir: str | os.PathLike) -> tuple[str, list[dict], dict[str, int]]:
    """The layout of ``dataset_dir``, its datalist items (labelled or not) and its label value per region."""
    root = Path(dataset_dir)
    layout = detect_layout(root)
    if layout == "msd":
        items, labels = _msd_items(root)
    else:
        items, labels = _brats_items(root, layout), dict(BRATS_LAYOUTS[layout]["labels"])
    return layout, items, labels
