"""Inference outputs: which cases to predict, names after the case, never overwriting, broken-case reports."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import str2bool

from monai_iunet.data import BrokenCaseError, case_name
from monai_iunet.errors import OutputExistsError, UserInputError

__all__ = ["case_name_formatter", "check_no_predictions", "check_writable", "report_broken_cases", "select_cases"]

logger = logging.getLogger(__name__)


def select_cases(datalist: Mapping[str, Any], subset: str = "testing") -> list[dict]:
    """The cases of a :func:`~monai_iunet.data.build_datalist` result to infer, without their labels.

    Args:
        datalist: the result of ``build_datalist``.
        subset: ``"testing"`` (unlabelled cases), ``"validation"``, ``"training"`` or ``"all"``.
    """
    subsets = ("training", "validation", "testing")
    if subset not in (*subsets, "all"):
        raise UserInputError(f"inference_subset must be one of {(*subsets, 'all')}, got {subset!r}.")
    items = [item for name in subsets if subset in (name, "all") for item in datalist[name]]
    if not items:
        raise UserInputError(
            f"the dataset has no {subset!r} cases to infer ({datalist['layout']} layout; unlabelled cases are "
            "'testing'); pass --inference_subset all to infer every case."
        )
    cases = [{"image": item["image"], "case": item["case"]} for item in items]
    _check_unique_names(cases)
    return cases


def _check_unique_names(cases: Sequence[dict]) -> None:
    """Refuse, before anything runs, cases whose predictions would have the same file name (one would be lost)."""
    sources: dict[str, list[str]] = {}
    for item in cases:
        image = item["image"]
        sources.setdefault(item["case"], []).append(str(image if isinstance(image, str) else image[0]))
    clashes = {name: files for name, files in sources.items() if len(files) > 1}
    if clashes:
        listed = "; ".join(f"{name}: {', '.join(files)}" for name, files in list(clashes.items())[:5])
        raise UserInputError(
            f"{len(clashes)} prediction name(s) would be written twice, one prediction overwriting the other "
            f"({listed}); infer one subset at a time (--inference_subset testing, training or validation) into "
            "different --output_dir folders, or rename the cases."
        )


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
