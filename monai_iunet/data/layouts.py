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

from monai_iunet.brats import LAYOUTS, MSD_LAYOUT, DatasetLayout, LabelConvention, TumourPart
from monai_iunet.errors import InputNotFoundError, UserInputError

__all__ = ["case_name", "detect_layout", "find_cases"]

_BRATS_FOLDER_LAYOUTS = tuple(layout for layout in LAYOUTS.values() if layout is not MSD_LAYOUT)
"""The layouts of one folder per case (BraTS 2018-2021 and 2023), as opposed to MSD's ``dataset.json``."""

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
    """The layout of ``dataset_dir``: one of the names of :data:`~monai_iunet.brats.LAYOUTS`.

    Raises:
        InputNotFoundError: ``dataset_dir`` does not exist.
        UserInputError: no recognised layout, or case folders of both BraTS namings.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputNotFoundError(
            f"dataset folder {str(root)!r} does not exist; give the folder that holds your cases "
            "(or generate synthetic ones with `monai-iunet generate-brats DIR`)."
        )
    if (root / "dataset.json").is_file():
        return MSD_LAYOUT.name
    found: dict[DatasetLayout, list[str]] = {layout: [] for layout in _BRATS_FOLDER_LAYOUTS}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for layout, cases in found.items():
            if any(_find_file(folder, stem).exists() for stem in layout.file_stems(folder.name)):
                cases.append(folder.name)
    mixed = [(layout, cases[0]) for layout, cases in found.items() if cases]
    if len(mixed) > 1:
        examples = " and ".join(f"{layout.description} (e.g. {case})" for layout, case in mixed)
        raise UserInputError(f"dataset_dir {str(root)!r} mixes {examples}; keep one naming per dataset_dir.")
    if mixed:
        return mixed[0][0].name
    raise UserInputError(
        f"no brain-tumour cases found in dataset_dir {str(root)!r}. Expected one of: "
        + "; ".join(layout.description for layout in LAYOUTS.values())
        + "."
    )


def _brats_items(root: Path, layout: DatasetLayout) -> list[dict]:
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = [_find_file(folder, stem) for stem in layout.file_stems(folder.name)]
        if not any(p.exists() for p in images):
            continue  # not a case folder
        item: dict[str, Any] = {"image": [str(p) for p in images], "case": folder.name}
        label = _find_file(folder, layout.label_stem(folder.name))
        if label.exists():
            item["label"] = str(label)
        items.append(item)
    return items


def _msd_convention(description: dict) -> LabelConvention:
    """The label convention of an MSD ``dataset.json`` from its ``labels`` entry (defaults to Task01's)."""
    values = MSD_LAYOUT.convention.part_values
    for key, name in ((int(k), str(v).lower()) for k, v in description.get("labels", {}).items()):
        if TumourPart.EDEMA in name:
            values[TumourPart.EDEMA] = key
        elif "non-enhancing" in name or "necro" in name:
            values[TumourPart.NECROSIS] = key
        elif TumourPart.ENHANCING in name:
            values[TumourPart.ENHANCING] = key
    if values == MSD_LAYOUT.convention.part_values:
        return MSD_LAYOUT.convention
    return LabelConvention(MSD_LAYOUT.name, **values, description="labels of this dataset.json")


def _msd_items(root: Path) -> tuple[list[dict], LabelConvention]:
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
    return items, _msd_convention(description)


def find_cases(dataset_dir: str | os.PathLike) -> tuple[DatasetLayout, list[dict], LabelConvention]:
    """The layout of ``dataset_dir``, its datalist items (labelled or not) and the label convention of its labels.

    The convention is the layout's, except for an MSD ``dataset.json`` whose ``labels`` name other values.
    """
    root = Path(dataset_dir)
    layout = LAYOUTS[detect_layout(root)]
    if layout is MSD_LAYOUT:
        items, convention = _msd_items(root)
    else:
        items, convention = _brats_items(root, layout), layout.convention
    return layout, items, convention
