"""The bundles shipped with the package, for users who installed the wheel and have no clone of the repository.

The bundles are package data: ``monai_iunet/bundles/<name>`` (``configs/``, ``docs/``, ``scripts/``, ``LICENSE``),
found with :func:`importlib.resources.files`. In the repository that folder is a symbolic link to the repository's
``bundles/`` (the one copy of the files), so a clone, an editable install and the wheel find them the same way; a
clone also finds what a run wrote there (``models/model.pt`` of README command 1). ``monai-iunet bundle copy NAME
DIR`` copies a bundle into ``DIR``, ready for ``monai.bundle run``.

Examples::

    monai-iunet bundle list
    monai-iunet bundle copy brats_iunet ./brats_iunet
    python -m monai.bundle run train_and_evaluate --bundle_root ./brats_iunet \\
        --config_file "['./brats_iunet/configs/train.json','./brats_iunet/configs/evaluate.json']"
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path

from monai_iunet.errors import InputNotFoundError, OutputExistsError

__all__ = ["copy_bundle", "shipped_bundle", "shipped_bundles", "shipped_bundles_folder"]

_GENERATED = ("models", "eval", "data", "predictions", "runs", "__pycache__")


def shipped_bundles_folder() -> Path:
    """The folder holding the shipped bundles: the package data ``monai_iunet/bundles``."""
    return Path(os.fspath(files("monai_iunet") / "bundles"))


def shipped_bundles() -> dict[str, Path]:
    """``{name: folder}`` of every shipped bundle (a folder with ``configs/metadata.json``), by name."""
    root = shipped_bundles_folder()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "configs" / "metadata.json").is_file()}


def shipped_bundle(name: str) -> Path:
    """The folder of the shipped bundle ``name``.

    Raises:
        InputNotFoundError: no shipped bundle of that name (the message lists those there are).
    """
    bundles = shipped_bundles()
    if name not in bundles:
        raise InputNotFoundError(
            f"no bundle named {name!r}; shipped bundles: {', '.join(sorted(bundles)) or 'none found'}."
        )
    return bundles[name]


def copy_bundle(name: str, destination: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy the shipped bundle ``name`` into ``destination`` (created; must not exist unless ``overwrite``).

    Only the bundle's own files are copied (no trained models, datasets or outputs of an earlier run).

    Raises:
        InputNotFoundError: no shipped bundle of that name (the message lists those there are).
        OutputExistsError: ``destination`` exists and ``overwrite`` is not set.
    """
    source = shipped_bundle(name)
    target = Path(destination)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{str(target)!r} exists; choose a new folder or pass --overwrite.")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_GENERATED), dirs_exist_ok=overwrite)
    return target
