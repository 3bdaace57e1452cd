"""Inference outputs: names after the case, never overwriting, broken-case reports."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from monai.utils import str2bool

from monai_iunet.data import BrokenCaseError, case_name
from monai_iunet.errors import OutputExistsError, UserInputError

__all__ = ["case_name_formatter", "check_no_predictions", "check_writable", "report_broken_cases"]

logger = logging.getLogger(__name__)


def case_name_formatter(metadict: dict, saver: Any = None) -> dict:
    """``SaveImaged`` ``output_name_formatter`` naming a prediction after its case (see :func:`case_name`)."""
    return {"subject": case_name(metadict["filename_or_obj"]), "idx": metadict.get("patch_index")}


def check_no_predictions(
    output_dir: str | os.PathLike,
    items: Iterable[dict],
    overwrite: bool = False,
    postfix: str = "seg",
    ext: str = ".nii.gz",
) -> None:
    """Raise ``FileExistsError`` if inference would overwrite existing predictions and ``overwrite`` is not set.

    Args:
        output_dir: where the predictions go.
        items: datalist items to infer (their ``"case"`` names the files ``<case>_<postfix><ext>``).
        overwrite: allow overwriting.
        postfix: file-name postfix of the predictions.
        ext: file extension of the predictions.
    """
    check_writable(output_dir)
    if str2bool(overwrite):
        return
    existing = [str(path) for item in items if (path := Path(output_dir) / f"{item['case']}_{postfix}{ext}").exists()]
    if existing:
        listed = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise OutputExistsError(
            f"{len(existing)} prediction(s) already exist in {str(output_dir)!r} ({listed}); pass --overwrite True "
            "to replace them, or choose another --output_dir."
        )


def check_writable(output_dir: str | os.PathLike) -> None:
    """Create ``output_dir`` if needed and check that a file can be written there, before any case is inferred.

    Raises:
        UserInputError: naming the folder and the operating system's reason.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as e:
        raise UserInputError(
            f"cannot write predictions to output_dir {str(output_dir)!r} ({type(e).__name__}: {e.strerror or e}); "
            "choose a folder you can write to with --output_dir."
        ) from e


def report_broken_cases(broken: Sequence[str], what: str = "inference") -> None:
    """Raise a :class:`BrokenCaseError` listing every case in ``broken`` (after the good cases were processed)."""
    if broken:
        raise BrokenCaseError(
            f"{what} skipped {len(broken)} broken case(s); the others were processed:\n  " + "\n  ".join(broken)
        )
