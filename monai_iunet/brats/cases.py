"""The cases of a BraTS datalist to infer, refused before anything runs when two predictions would share a name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monai_iunet.errors import UserInputError

__all__ = ["select_cases"]


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
