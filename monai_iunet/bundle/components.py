"""One definition shared by two configs: a component of one bundle config, built for another.

The BraTS bundle's validation (``train.json``, ``evaluate.json``) scores the predictions that ``inference.json``
would write, so it uses ``inference.json``'s ``inferer`` itself rather than a copy that could drift::

    "inference_config": {"_target_": "monai_iunet.bundle.bundle_config", "bundle_root": "@bundle_root",
                         "bundle": "brats_iunet", "name": "inference.json"},
    "validate": {"inferer": {"_target_": "monai_iunet.bundle.config_component",
                             "config_file": "@inference_config", "id": "inferer"}}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from monai_iunet.errors import InputNotFoundError

__all__ = ["bundle_config", "config_component"]

logger = logging.getLogger(__name__)


def bundle_config(bundle_root: str | os.PathLike, bundle: str, name: str) -> str:
    """``<bundle_root>/configs/<name>`` if it exists, else the installed bundle ``bundle``'s ``configs/<name>``.

    A run whose ``bundle_root`` is only a folder for its outputs (the configs given by path from elsewhere) gets the
    installed bundle's config, and a line in the log says so.
    """
    own = Path(bundle_root) / "configs" / name
    if own.is_file():
        return str(own)
    from monai_iunet.bundle.shipped import shipped_bundles

    installed = shipped_bundles().get(bundle)
    if installed is None or not (installed / "configs" / name).is_file():
        return str(own)  # config_component names it as missing
    logger.info(f"no {own}; using the installed {bundle} bundle's {installed / 'configs' / name}")
    return str(installed / "configs" / name)


def config_component(config_file: str | os.PathLike | Sequence[str | os.PathLike], id: str) -> Any:
    """The component ``id`` of ``config_file`` (or of several files merged in order, as ``monai.bundle run`` does).

    Only ``id`` and what it references are instantiated (e.g. ``inferer`` and its ``@patch_size``).

    Raises:
        InputNotFoundError: a config file does not exist.
    """
    files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file)
    missing = [str(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise InputNotFoundError(
            f"config file(s) {missing} not found (needed for their {id!r}); pass --inference_config with the "
            "bundle's configs/inference.json (a list of files for a merged inference config)."
        )
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    return parser.get_parsed_content(id)
