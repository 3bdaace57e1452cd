"""Score a folder of predicted label maps against a folder of references: case matching, CSV, summary, table.

Cases are matched by case id, not by exact file name: ``<case>.nii.gz``, ``<case>_seg.nii.gz`` and the BraTS 2023
``<case>-seg.nii.gz`` all belong to ``<case>``, in either folder, at any depth (BraTS case folders
``<case>/<case>_seg.nii.gz`` included: beside ``<case>_seg``, the images ``<case>_*`` / ``<case>-*`` are its
modalities, not label maps). Each prediction is scored on its reference's grid with
:func:`~monai_iunet.brats.evaluate_labels`; the voxel spacing comes from the reference's header.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_iunet.brats.evaluation import METRICS, NSD_TOLERANCE_MM, evaluate_labels
from monai_iunet.brats.labels import LabelConvention, label_convention
from monai_iunet.errors import InputNotFoundError, UserInputError
from monai_iunet.progress import progress_bar

__all__ = [
    "CSV_COLUMNS",
    "SUMMARY_COLUMNS",
    "case_id",
    "evaluate_folders",
    "format_summary",
    "label_files",
    "load_label",
    "match_cases",
    "read_rows",
    "summarize",
    "write_csv",
]

CSV_COLUMNS: tuple[str, ...] = ("case", "region", *METRICS)
"""The columns of the per-case CSV (one row per case and region)."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "region",
    "metric",
    "mean",
    "median",
    "sd",
    "cases",
    "empty_reference",
    "empty_both",
)
"""The columns of the summary CSV (one row per region and metric)."""

_NIFTI = re.compile(r"(?i)\.nii(\.gz)?$")
_SEG_SUFFIX = re.compile(r"(?i)[_-]seg$")


def case_id(path: str | os.PathLike) -> str:
    """The case a label file belongs to: its name without ``.nii[.gz]`` and without a ``_seg`` / ``-seg`` suffix.

    Examples::

        >>> case_id("BraTS2021_00000/BraTS2021_00000_seg.nii.gz"), case_id("BraTS-GLI-00000-000-seg.nii.gz")
        ('BraTS2021_00000', 'BraTS-GLI-00000-000')
    """
    return _SEG_SUFFIX.sub("", _NIFTI.sub("", Path(path).name))


def label_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The label maps under ``folder`` by case id (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputNotFoundError(f"label folder {str(folder)!r} does not exist; pass the folder of the NIfTI files.")
    by_dir: dict[Path, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and _NIFTI.search(path.name):
            by_dir.setdefault(path.parent, []).append(path)
    found: dict[str, Path] = {}
    for files in by_dir.values():
        seg_cases = {case_id(f) for f in files if _SEG_SUFFIX.search(_NIFTI.sub("", f.name))}
        for path in files:
            if _is_modality(path, seg_cases):
                continue
            case = case_id(path)
            if case in found:
                raise UserInputError(f"two label files of case {case}: {found[case]} and {path}; keep one.")
            found[case] = path
    return found


def _is_modality(path: Path, seg_cases: set[str]) -> bool:
    """Whether ``path`` is an image of a case that has a ``*seg`` file beside it (``<case>_flair``, ``<case>-t1c``)."""
    stem = _NIFTI.sub("", path.name)
    return any(stem.startswith((f"{case}_", f"{case}-")) and stem != case for case in seg_cases) and (
        not _SEG_SUFFIX.search(stem)
    )


def match_cases(pred_dir: str | os.PathLike, ref_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(case, prediction, reference)`` for every reference, sorted by case id.

    Raises:
        UserInputError: a reference has no prediction (all are listed), or no reference was found.
    """
    preds, refs = label_files(pred_dir), label_files(ref_dir)
    if not refs:
        raise InputNotFoundError(f"no NIfTI label maps under {str(ref_dir)!r}.")
    missing = sorted(set(refs) - set(preds))
    if missing:
        listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise UserInputError(
            f"{len(missing)} of {len(refs)} reference case(s) have no prediction in {str(pred_dir)!r}: {listed}. "
            "Name predictions <case>.nii.gz, <case>_seg.nii.gz or <case>-seg.nii.gz."
        )
    return [(case, preds[case], refs[case]) for case in sorted(refs)]


def load_label(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """A label map file's array, affine and voxel spacing (mm), as stored (no reorientation)."""
    image = nib.load(str(path))
    return np.asanyarray(image.dataobj), image.affine, tuple(float(z) for z in image.header.get_zooms()[:3])


def evaluate_folders(
    pred_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    convention: str | LabelConvention,
    nsd_tolerance: float = NSD_TOLERANCE_MM,
    progress: bool | str | None = None,
) -> list[dict]:
    """Score every reference case under ``ref_dir`` against its prediction under ``pred_dir``.

    A progress bar over the cases shows the time left (at a terminal: :mod:`monai_iunet.progress`).

    Args:
        pred_dir: folder of predicted label maps.
        ref_dir: folder of reference label maps (a BraTS dataset folder works).
        convention: the label convention of both.
        nsd_tolerance: NSD tolerance in mm.
        progress: draw the progress bar: ``None`` (``MONAI_IUNET_PROGRESS``, else only at a terminal), ``"on"``,
            ``"off"``, ``"auto"`` or a bool.

    Returns:
        The rows of :func:`~monai_iunet.brats.evaluate_labels` of every case (three per case).

    Raises:
        UserInputError: a prediction is not on its reference's grid, or holds a value outside ``convention``.
    """
    convention = label_convention(convention)
    rows: list[dict] = []
    cases = match_cases(pred_dir, ref_dir)
    for case, pred_path, ref_path in progress_bar(cases, desc="evaluate", unit="case", progress=progress):
        pred, pred_affine, _ = load_label(pred_path)
        ref, ref_affine, spacing = load_label(ref_path)
        if pred.shape != ref.shape or not np.allclose(pred_affine, ref_affine, atol=1e-3):
            raise UserInputError(
                f"case {case}: the prediction {pred_path} (shape {pred.shape}) is not on the reference's grid "
                f"{ref_path} (shape {ref.shape}); resample it onto the reference (nearest neighbour) first."
            )
        rows += evaluate_labels(pred, ref, convention, spacing, case, nsd_tolerance)
    return rows


def write_csv(rows: Iterable[Mapping], path: str | os.PathLike, columns: Sequence[str] = CSV_COLUMNS) -> Path:
    """Write ``rows`` to the CSV ``path`` with ``columns`` (floats with 6 decimals); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})
    return path


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a per-case CSV written by :func:`write_csv` (metrics as floats)."""
    with open(path, newline="") as f:
        return [{k: (v if k in ("case", "region") else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def summarize(rows: Sequence[Mapping]) -> list[dict]:
    """Mean, median and sample standard deviation of each metric per region, and the cases with an empty region.

    Every case enters every mean (no metric is NaN; empty regions score by the conventions of
    :mod:`monai_iunet.brats.evaluation`). ``empty_reference`` counts the cases whose reference has none of the
    region, ``empty_both`` those where the prediction has none either (read from the rows' ``reference_empty`` and
    ``prediction_empty``, which :func:`~monai_iunet.brats.evaluate_labels` adds and the CSV leaves out).
    """
    summary = []
    for region in sorted({r["region"] for r in rows}):
        region_rows = [r for r in rows if r["region"] == region]
        empty_ref = sum(1 for r in region_rows if r.get("reference_empty"))
        empty_both = sum(1 for r in region_rows if r.get("reference_empty") and r.get("prediction_empty"))
        for metric in METRICS:
            values = np.array([float(r[metric]) for r in region_rows])
            summary.append(
                {
                    "region": region,
                    "metric": metric,
                    "mean": float(np.mean(values)),
                    "median": float(np.median(values)),
                    "sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                    "cases": len(values),
                    "empty_reference": empty_ref,
                    "empty_both": empty_both,
                }
            )
    return summary


def format_summary(summary: Sequence[Mapping], metrics: Sequence[str] = METRICS) -> str:
    """A table with one line per metric and ``mean ± sd (median)`` per region, and the empty-region counts."""
    regions = sorted({s["region"] for s in summary})
    cell = {(s["region"], s["metric"]): s for s in summary}
    lines = [f"{'metric':<17}" + "".join(f"{r.upper():>28}" for r in regions)]
    for metric in metrics:
        parts = []
        for region in regions:
            s = cell[(region, metric)]
            parts.append(f"{s['mean']:.4f} ± {s['sd']:.4f} ({s['median']:.4f})".rjust(28))
        lines.append(f"{metric:<17}" + "".join(parts))
    first = {r: cell[(r, metrics[0])] for r in regions}
    lines.append(
        f"{'cases':<17}"
        + "".join(
            f"{first[r]['cases']} ({first[r]['empty_reference']} empty ref, {first[r]['empty_both']} both)".rjust(28)
            for r in regions
        )
    )
    return "\n".join(lines)
