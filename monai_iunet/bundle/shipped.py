"""The bundles shipped with the package, for users who installed the wheel and have no clone of the repository.

The wheel installs each bundle folder (``configs/``, ``docs/``, ``scripts/``, ``LICENSE``) under
``<prefix>/share/monai-iunet/bundles/<name>``; in a clone (or an editable install) they are the repository's
``bundles/<name>``. ``monai-iunet bundle copy NAME DIR`` copies one into ``DIR``, ready for ``monai.bundle run``.

Examples::

    monai-iunet bundle list
    monai-iunet bundle copy brats_iunet ./brats_iunet
    python -m monai.bundle run train_and_evaluate --bundle_root ./brats_iunet \\
        --config_file "['./brats_iunet/configs/train.json','./brats_iunet/configs/evaluate.json']"
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from monai_iunet.errors import InputNotFoundError, OutputExistsError

__all__ = ["bundle_folders", "copy_bundle", "shipped_bundles"]

_SHARE = Path("share") / "monai-iunet" / "bundles"
_GENERATED = ("models", "eval", "data", "predictions", "__pycache__")


def bundle_folders() -> list[Path]:
    """Where shipped bundles are looked for: the repository's ``bundles/``, then the install's data folders."""
    candidates = [Path(__file__).resolve().parents[2] / "bundles"]
    prefixes = [sys.prefix, sysconfig.get_path("data"), os.path.join(sysconfig.get_path("purelib"), os.pardir)]
    for prefix in prefixes:
        candidates.append(Path(prefix).resolve() / _SHARE)
    return [c for c in dict.fromkeys(candidates) if c.is_dir()]


def shipped_bundles() -> dict[str, Path]:
    """``{name: folder}`` of every bundle found (a folder with ``configs/metadata.json``); the first found wins."""
    found: dict[str, Path] = {}
    for folder in bundle_folders():
        for bundle in sorted(folder.iterdir()):
            if (bundle / "configs" / "metadata.json").is_file():
                found.setdefault(bundle.name, bundle)
    return found


def copy_bundle(name: str, destination: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy the shipped bundle ``name`` into ``destination`` (created; must not exist unless ``overwrite``).

    Only the bundle's own files are copied (no trained models, datasets or outputs of an earlier run).

    Raises:
        InputNotFoundError: no shipped bundle of that name (the message lists those there are).
        OutputExistsError: ``destination`` exists and ``overwrite`` is not set.
    """
    bundles = shipped_bundles()
    if name not in bundles:
        raise InputNotFoundError(
            f"no bundle named {name!r}; shipped bundles: {', '.join(sorted(bundles)) or 'none found'}."
        )
    target = Path(destination)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{str(target)!r} exists; choose a new folder or pass --overwrite.")
    shutil.copytree(bundles[name], target, ignore=shutil.ignore_patterns(*_GENERATED), dirs_exist_ok=overwrite)
    return target
