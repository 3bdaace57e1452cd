"""Whole cohorts: every study of a PACS query, a UID list or a folder of study folders, segmented into one table.

Each study gets its own folder ``OUT/<study>/`` (the pipeline's results, which appear only when complete, then
``study.json``, written last and atomically). ``OUT/cohort.csv`` is rewritten after every study
(:mod:`~monai_iunet.clinical.cohort_table`). A failing study is recorded with its reason and the others go on.
Killing the run and starting it again skips the studies that have a ``study.json`` and redoes the one that was
interrupted.

Example::

    from monai_iunet.clinical.cohort import run_cohort, studies_from_args
    from monai_iunet.clinical.dicomweb import connect

    entries = studies_from_args(dicomweb=connect(url), query=["StudyDescription=*glioma*"])
    summary = run_cohort(entries, "cohort_out", store=True)
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_iunet.clinical.cohort_table import read_rows, row_from_report, write_csv, write_row
from monai_iunet.clinical.dicomweb import DICOMwebStudy, find_studies, parse_query
from monai_iunet.clinical.io import ClinicalInputError
from monai_iunet.clinical.series import AmbiguousSeriesError
from monai_iunet.clinical.study_sources import ExistingResultError, FolderStudy, PacsStudy, segment_study_source
from monai_iunet.progress import showing_progress

__all__ = ["CohortStudy", "run_cohort", "studies_from_args"]

logger = logging.getLogger(__name__)


@dataclass
class CohortStudy:
    """One study of a cohort, not yet opened.

    Attributes:
        key: its folder name under the cohort folder.
        open: makes its source (:class:`PacsStudy` or :class:`FolderStudy`); may raise (a broken study).
        meta: what is known before opening it: ``PatientID``, ``StudyDate``, ``StudyTime``, ``StudyInstanceUID``.
    """

    key: str
    open: Callable[[], PacsStudy | FolderStudy]
    meta: dict[str, str] = field(default_factory=dict)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


def _pacs_entry(client, row: dict[str, str]) -> CohortStudy:
    uid = row["StudyInstanceUID"]
    return CohortStudy(_safe(uid), lambda: PacsStudy(DICOMwebStudy(client, uid)), dict(row))


def _read_uids(path: str | os.PathLike) -> list[str]:
    """StudyInstanceUIDs from a CSV with a ``StudyInstanceUID`` column, or one UID a line."""
    path = Path(path)
    if not path.is_file():
        raise ClinicalInputError(f"--uids {path}: no such file.")
    lines = [r for r in csv.reader(path.read_text().splitlines()) if r and r[0].strip()]
    column = next((i for i, name in enumerate(lines[0]) if name.strip() == "StudyInstanceUID"), None) if lines else 0
    uids = [r[column or 0].strip() for r in (lines[1:] if column is not None and lines else lines)]
    bad = [u for u in uids if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", u)]
    if bad or not uids:
        raise ClinicalInputError(f"--uids {path}: expected StudyInstanceUIDs, got {bad[:3] or 'none'}.")
    return uids


def _folder_entry(folder: Path) -> CohortStudy:
    return CohortStudy(_safe(folder.name), lambda: FolderStudy(folder))


def studies_from_args(
    dicomweb=None,
    query: Sequence[str] | None = None,
    uid_csv: str | os.PathLike | None = None,
    studies_dir: str | os.PathLike | None = None,
) -> list[CohortStudy]:
    """The studies of a cohort: a QIDO-RS query or a UID list on a DICOMweb server, or a folder of study folders.

    Args:
        dicomweb: a ``DICOMwebClient`` (:func:`~monai_iunet.clinical.dicomweb.connect`).
        query: QIDO-RS filters as ``KEYWORD=VALUE`` (with ``dicomweb``).
        uid_csv: a CSV of StudyInstanceUIDs (with ``dicomweb``).
        studies_dir: a folder whose sub-folders are studies (DICOM files at any depth).
    """
    if studies_dir is not None:
        root = Path(studies_dir)
        if not root.is_dir():
            raise ClinicalInputError(f"--studies {root}: no such folder.")
        entries = [_folder_entry(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    elif dicomweb is not None and query:
        entries = [_pacs_entry(dicomweb, row) for row in find_studies(dicomweb, parse_query(query))]
    elif dicomweb is not None and uid_csv is not None:
        entries = []
        for uid in _read_uids(uid_csv):
            found = find_studies(dicomweb, {"StudyInstanceUID": uid})
            entries.append(_pacs_entry(dicomweb, found[0] if found else {"StudyInstanceUID": uid}))
    else:
        raise ClinicalInputError("give --studies DIR, or --dicomweb URL with --query KEYWORD=VALUE or --uids CSV.")
    if not entries:
        raise ClinicalInputError("the cohort is empty: no study matched (check --query / --studies).")
    return entries


def _status(error: Exception) -> str:
    if isinstance(error, AmbiguousSeriesError):
        return "ambiguous"
    if isinstance(error, ExistingResultError):
        return "exists"
    return "failed"


def _reason(error: Exception) -> str:
    message = str(error).strip() or type(error).__name__
    return message if isinstance(error, ClinicalInputError) else f"{type(error).__name__}: {message}"


def _run_one(entry: CohortStudy, output: Path, store: bool, overwrite: bool, segment_options: dict) -> dict:
    """Segment one study; returns its row (a failure becomes a row with its reason)."""
    start = time.perf_counter()
    meta = dict(entry.meta)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source = entry.open()
            meta = {**getattr(source, "meta", {}), **meta}
            report = segment_study_source(
                source, output / entry.key, store=store, overwrite=overwrite, overwrite_output=True, **segment_options
            )
        report.setdefault("warnings", []).extend(str(w.message) for w in caught)
        return row_from_report(entry.key, meta, report, output / entry.key, time.perf_counter() - start)
    except Exception as error:  # any failure of one study is recorded; the others go on
        logger.debug("study %s failed", entry.key, exc_info=True)
        return {
            "study": entry.key,
            "study_uid": meta.get("StudyInstanceUID", ""),
            "patient": meta.get("PatientID", ""),
            "date": meta.get("StudyDate", ""),
            "status": _status(error),
            "reason": _reason(error),
            "time_s": round(time.perf_counter() - start, 1),
        }


def _remove_leftovers(output: Path, keys: Sequence[str]) -> None:
    """Remove the temporary folders a killed run left (``.<study>.*.partial``, ``.<study>.*.series``)."""
    for key in keys:
        for pattern in (f".{key}.*.partial", f".{key}.*.series"):
            for leftover in output.glob(pattern):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)


def _summary(rows: dict[str, dict], done_before: int, wall_s: float, ran: int, output: Path) -> dict:
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    segmented = [r["time_s"] for r in rows.values() if r["status"] == "ok"]
    summary = {
        "studies": len(rows),
        "ok": counts.get("ok", 0),
        "failed": len(rows) - counts.get("ok", 0),
        "by_status": counts,
        "done_before": done_before,
        "ran": ran,
        "wall_s": round(wall_s, 1),
        "mean_s_per_ok_study": round(sum(segmented) / len(segmented), 1) if segmented else None,
        "csv": str(output / "cohort.csv"),
    }
    lines = [
        f"cohort: {len(rows)} studies, {summary['ok']} segmented, {summary['failed']} not "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k != 'ok') or 'none'}); {ran} run now, "
        f"{done_before} done before; wall time {wall_s:.0f} s; {summary['mean_s_per_ok_study']} s per segmented study"
    ]
    lines += [f"  {r['study']}: {r['status']}: {r['reason']}" for r in rows.values() if r["status"] != "ok"]
    lines.append(f"table: {summary['csv']}")
    print("\n".join(lines))
    return summary


def run_cohort(
    entries: Sequence[CohortStudy],
    output: str | os.PathLike,
    store: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    bundle: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool | str | None = None,
    **segment_options,
) -> dict:
    """Segment every study of a cohort into ``output``, resumably; returns (and prints) the summary.

    Args:
        entries: the studies (:func:`studies_from_args`).
        output: the cohort folder: ``<study>/`` per study and ``cohort.csv``.
        store: store each study's SEG and SR back into it (studies on a DICOMweb server).
        overwrite: store a new version where the study already holds results of this tool.
        retry_failed: redo the studies recorded as not ``ok`` by an earlier run (default: keep their row).
        bundle: the MONAI bundle with trained weights (loaded once for all studies).
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a progress bar over the studies with the time left, and one over each study's steps:
            ``None`` (``MONAI_IUNET_PROGRESS``, else only when stderr is a terminal), ``"on"``, ``"off"``,
            ``"auto"`` or a bool (:mod:`monai_iunet.progress`).
        segment_options: passed to :func:`~monai_iunet.clinical.segment` (``n4``, ``reference``...).

    Returns:
        counts by status, wall time, mean time per segmented study and the path of ``cohort.csv``.
    """
    from monai_iunet.clinical.inference import BundleSegmenter
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ClinicalInputError("two studies of the cohort have the same folder name; give each study its own.")
    rows = {k: r for k, r in read_rows(output).items() if k in set(keys)}
    finished = {k for k, r in rows.items() if r["status"] == "ok" or not retry_failed}
    todo = [e for e in entries if e.key not in finished]
    _remove_leftovers(output, keys)
    start = time.perf_counter()
    try:
        segmenter = BundleSegmenter(bundle or DEFAULT_BUNDLE, device=device) if todo else None
    except FileNotFoundError as e:
        raise ClinicalInputError(f"--bundle: {e}") from None
    with showing_progress(total=len(todo), desc="cohort", unit="study", progress=progress) as bar:
        options = {**segment_options, "segmenter": segmenter, "progress": not bar.disable}
        for entry in todo:
            row = _run_one(entry, output, store, overwrite, options)
            write_row(output / entry.key, row)
            rows[entry.key] = row
            write_csv(output, list(rows.values()))
            bar.update()
            ok = sum(r["status"] == "ok" for r in rows.values())
            bar.set_postfix(ok=ok, not_ok=len(rows) - ok)
    write_csv(output, [rows[k] for k in keys if k in rows])
    wall_s = time.perf_counter() - start
    return _summary({k: rows[k] for k in keys}, len(entries) - len(todo), wall_s, len(todo), output)
