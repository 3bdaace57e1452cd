"""The table of a cohort: one row per study (``study.json`` in its folder), ``cohort.csv`` with the change in each
volume from the same patient's previous study (response assessment reads these).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from monai_iunet.brats import MODALITY_ORDER, REGION_ORDER

__all__ = ["COLUMNS", "ROW_FILE", "read_rows", "row_from_report", "write_csv", "write_row"]

ROW_FILE = "study.json"
"""Written into a study's folder last: the study is finished (segmented, stored) or failed, and why."""

REGIONS = tuple(r.value.upper() for r in REGION_ORDER)
VOLUMES = tuple(f"{r}_mL" for r in REGIONS)
CHANGES = tuple(f"{r}_change_mL" for r in REGIONS)

COLUMNS = (
    "study",
    "study_uid",
    "patient",
    "date",
    *(f"{m.value}_series" for m in MODALITY_ORDER),
    *VOLUMES,
    "brain_mL",
    "registration_min_dice",
    "registration",
    "warnings",
    "status",
    "reason",
    "stored_version",
    "time_s",
    "previous_study",
    *CHANGES,
)
"""The columns of ``cohort.csv``: volumes in mL, series chosen as ``description [SeriesInstanceUID]``, the
smallest foreground Dice of the rigid registrations, status (``ok``, ``ambiguous``, ``failed``, ``exists``), the
reason of a failure, wall time, and the change of each volume from the patient's previous ``ok`` study by date."""


def _brain_ml(output: Path, report: Mapping) -> float | str:
    mask = output / "brain_mask.nii.gz"
    if mask.is_file():
        image = sitk.ReadImage(str(mask))
        return float((sitk.GetArrayViewFromImage(image) > 0).sum()) * float(np.prod(image.GetSpacing())) / 1000.0
    value = report.get("brain_volume_ml", report.get("brain_mask", {}).get("volume_ml", ""))
    return value if isinstance(value, (int, float)) else ""


def row_from_report(study: str, meta: Mapping[str, str], report: Mapping, output: Path, time_s: float) -> dict:
    """The row of a segmented study, from :func:`~monai_iunet.clinical.study_sources.segment_study_source`'s report."""
    registration = report.get("registration", {})
    dice = [m["foreground_dice"] for m in registration.values() if m.get("foreground_dice") is not None]
    failed = [name for name, m in registration.items() if m.get("failed")]
    chosen = report.get("study", {}).get("series", {})
    row = {
        "study": study,
        "study_uid": report.get("study", {}).get("study_uid", meta.get("StudyInstanceUID", "")),
        "patient": meta.get("PatientID", ""),
        "date": meta.get("StudyDate", ""),
        "brain_mL": _brain_ml(output, report),
        "registration_min_dice": round(min(dice), 4) if dice else "",
        "registration": "failed: " + ", ".join(failed) if failed else "ok",
        "warnings": "; ".join(str(w) for w in report.get("warnings", [])),
        "status": "ok",
        "reason": "",
        "stored_version": report.get("pacs", {}).get("version", ""),
        "time_s": round(time_s, 1),
        "_time": meta.get("StudyTime", ""),
    }
    for m in MODALITY_ORDER:
        s = chosen.get(m.value, {})
        row[f"{m.value}_series"] = f"{s.get('description', '')} [{s.get('uid', '')}]" if s else ""
    for region, column in zip(REGIONS, VOLUMES):
        row[column] = round(float(report["volumes_ml"][region]), 3)
    return row


def write_row(folder: Path, row: Mapping) -> None:
    """Write a study's row into its folder, atomically (the study counts as finished once it is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{ROW_FILE}.partial"
    tmp.write_text(json.dumps(dict(row), indent=4))
    os.replace(tmp, folder / ROW_FILE)


def read_rows(output: Path) -> dict[str, dict]:
    """The rows of the studies finished so far in a cohort folder, by study folder name."""
    rows = {}
    for path in sorted(output.glob(f"*/{ROW_FILE}")):
        rows[path.parent.name] = json.loads(path.read_text())
    return rows


def _add_changes(rows: Sequence[dict]) -> None:
    """Fill ``previous_study`` and the volume changes of each ``ok`` row from the patient's previous ``ok`` row."""
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("status") == "ok" and row.get("patient"):
            by_patient.setdefault(row["patient"], []).append(row)
    for studies in by_patient.values():
        studies.sort(key=lambda r: (r.get("date", ""), r.get("_time", ""), r["study"]))
        for previous, row in zip(studies, studies[1:]):
            row["previous_study"] = previous["study"]
            for volume, change in zip(VOLUMES, CHANGES):
                row[change] = round(float(row[volume]) - float(previous[volume]), 3)


def write_csv(output: Path, rows: Sequence[Mapping]) -> Path:
    """Write ``cohort.csv`` (atomically): the rows sorted by patient and date, with the longitudinal changes."""
    rows = [dict(r) for r in rows]
    _add_changes(rows)
    rows.sort(key=lambda r: (r.get("patient", ""), r.get("date", ""), r.get("_time", ""), r["study"]))
    path, tmp = output / "cohort.csv", output / ".cohort.csv.partial"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path
