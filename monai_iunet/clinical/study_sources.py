"""One study in, results out: a study from a PACS (DICOMweb) or a folder, its four series found, segmented, and
the DICOM-SEG and volumes SR stored back into the same study.

- :class:`PacsStudy` and :class:`FolderStudy` are the two study sources. Both list their series as
  :class:`~monai_iunet.clinical.series.SeriesInfo` (a PACS from one instance's metadata per series, no pixels) and
  hand out the files of a series (a PACS fetches only the four chosen ones, by WADO-RS).
- :func:`segment_study_source` identifies the series (:func:`~monai_iunet.clinical.series.identify_series`), runs
  :func:`~monai_iunet.clinical.pipeline.segment`, and with ``store`` sends the results back by STOW-RS.

Results of this tool already in the study are found before anything is computed: storing again needs
``overwrite``, and the new SEG and SR then carry the next version in their SeriesNumber and SeriesDescription
(``"iUNet tumour segmentation v2"``, series 310).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pydicom

import monai_iunet
from monai_iunet.brats import Modality
from monai_iunet.clinical.dicomweb import DICOMwebStudy
from monai_iunet.clinical.io import ClinicalInputError
from monai_iunet.clinical.pipeline import segment
from monai_iunet.clinical.series import SeriesInfo, choice_table, identify_series
from monai_iunet.clinical.study import scan_study
from monai_iunet.progress import progress_bar

__all__ = [
    "SEG_DESCRIPTION",
    "SR_DESCRIPTION",
    "ExistingResultError",
    "FolderStudy",
    "PacsStudy",
    "earlier_results",
    "segment_study_source",
]

logger = logging.getLogger(__name__)

SEG_DESCRIPTION = "iUNet tumour segmentation"
SR_DESCRIPTION = "iUNet tumour volumes"
#: SeriesNumber of version 1 of the SEG and the SR; version v adds 10 * (v - 1)
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 300, 301
#: series of these DICOM modalities are results or documents, never one of the four MR series
NOT_IMAGES = frozenset({"SEG", "SR", "PR", "KO", "DOC", "RTSTRUCT", "REG"})
_VERSIONED = re.compile(rf"^({re.escape(SEG_DESCRIPTION)}|{re.escape(SR_DESCRIPTION)})(?: v(\d+))?\b")


class ExistingResultError(ClinicalInputError):
    """The study already holds results of this tool and ``overwrite`` was not given."""


class PacsStudy:
    """A study on a DICOMweb server, as a source of series (QIDO-RS + one instance's metadata, WADO-RS)."""

    def __init__(self, pacs: DICOMwebStudy) -> None:
        self.pacs = pacs
        self.study_uid = pacs.study_uid

    def __repr__(self) -> str:
        return repr(self.pacs)

    def series_infos(self) -> list[SeriesInfo]:
        rows = [r for r in self.pacs.series() if r["Modality"].upper() not in NOT_IMAGES]
        if not rows:
            raise ClinicalInputError(f"{self}: no image series (or no such study on the server).")
        infos = []
        for row in rows:
            header = self.pacs.first_instance_header(row["SeriesInstanceUID"])
            n = int(row["NumberOfSeriesRelatedInstances"] or 1)
            infos.append(SeriesInfo.from_dataset(header, n_instances=n))
        return infos

    def files(self, info: SeriesInfo, folder: Path, on_instance: Callable[[], object] | None = None) -> list[str]:
        return self.pacs.fetch_series(info.series_uid, folder, on_instance)


class FolderStudy:
    """A study folder as scanners export it (DICOM files in any sub-folders, or image files with JSON sidecars), as a
    source of series (:func:`~monai_iunet.clinical.study.scan_study`)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._infos = [i for i in scan_study(self.folder) if i.modality.upper() not in NOT_IMAGES]
        uids = {i.study_uid for i in self._infos if i.study_uid}
        if len(uids) > 1:
            raise ClinicalInputError(f"{self.folder}: holds {len(uids)} studies; give one study per folder.")
        self.study_uid = uids.pop() if uids else ""

    def __repr__(self) -> str:
        return f"study folder {self.folder}"

    @property
    def meta(self) -> dict[str, str]:
        """PatientID, StudyDate, StudyTime and StudyInstanceUID of the study (from one DICOM header)."""
        first = next((i.files[0] for i in self._infos if i.files), None)
        header = pydicom.dcmread(first, stop_before_pixels=True) if first else {}
        return {k: str(header.get(k, "")) for k in ("PatientID", "StudyDate", "StudyTime", "StudyInstanceUID")}

    def series_infos(self) -> list[SeriesInfo]:
        if not self._infos:
            raise ClinicalInputError(f"{self}: holds no image series.")
        return list(self._infos)

    def files(self, info: SeriesInfo, folder: Path) -> list[str] | str:
        return list(info.files) if info.files else str(info.path)


def earlier_results(pacs: DICOMwebStudy) -> list[dict]:
    """The SEG and SR series of this tool in the study (QIDO-RS), each with its ``version`` (1 when unnumbered)."""
    found = []
    for modality in ("SEG", "SR"):
        for row in pacs.series(Modality=modality):
            match = _VERSIONED.match(row["SeriesDescription"])
            if match:
                found.append({**row, "version": int(match.group(2) or 1)})
    return found


def _label_version(path: Path, description: str, series_number: int, version: int) -> None:
    """Write the result's version into its SeriesDescription and SeriesNumber (the local file too)."""
    ds = pydicom.dcmread(str(path))
    ds.SeriesDescription = f"{description} v{version} (monai-iunet {monai_iunet.__version__})"
    ds.SeriesNumber = series_number + 10 * (version - 1)
    ds.save_as(str(path))


def _result_files(output: Path) -> tuple[Path | None, list[Path]]:
    """The DICOM-SEG and the structured reports the pipeline wrote into ``output``."""
    seg, reports = None, []
    for path in sorted(output.glob("*.dcm")):
        modality = str(pydicom.dcmread(str(path), stop_before_pixels=True).get("Modality", ""))
        if modality == "SEG":
            seg = path
        elif modality == "SR":
            reports.append(path)
    return seg, reports


def _check_earlier(pacs: DICOMwebStudy, store: bool, overwrite: bool) -> tuple[list[dict], int]:
    """The earlier results of this tool and the version to store; refuses to store again without ``overwrite``."""
    earlier = earlier_results(pacs)
    version = max((e["version"] for e in earlier), default=0) + 1
    if earlier:
        listing = "; ".join(f"{e['Modality']} #{e['SeriesNumber']} {e['SeriesDescription']!r}" for e in earlier)
        if store and not overwrite:
            raise ExistingResultError(
                f"{pacs} already holds results of monai-iunet ({listing}); pass --overwrite to store version "
                f"{version} in their place."
            )
        logger.info("%s already holds results of monai-iunet: %s", pacs, listing)
    return earlier, version


def _store(pacs: DICOMwebStudy, output: Path, version: int, earlier: list[dict]) -> dict:
    seg, reports = _result_files(output)
    if seg is None:
        raise ClinicalInputError(f"{output}: no DICOM-SEG was written, so there is nothing to store into {pacs}.")
    _label_version(seg, SEG_DESCRIPTION, SEG_SERIES_NUMBER, version)
    for report in reports:
        _label_version(report, SR_DESCRIPTION, SR_SERIES_NUMBER, version)
    stored = pacs.store([seg, *reports])
    replaced = [e["SeriesInstanceUID"] for e in earlier if pacs.delete_series(e["SeriesInstanceUID"])]
    kept = [e["SeriesInstanceUID"] for e in earlier if e["SeriesInstanceUID"] not in replaced]
    if kept:
        logger.warning(
            "%s: the server does not delete series (not a required DICOMweb service); the earlier results stay, "
            "superseded by version %d: %s",
            pacs,
            version,
            ", ".join(kept),
        )
    return {"version": version, "instances": stored, "files": [p.name for p in (seg, *reports)], "kept": kept}


def _fetch(
    source: PacsStudy | FolderStudy, chosen: Mapping[Modality, SeriesInfo], folder: Path, progress: bool | str | None
) -> dict[str, list[str]]:
    """The files of the chosen series (a PACS study's are fetched into ``folder``, with a bar over the instances)."""
    if not isinstance(source, PacsStudy):
        return {m.value: source.files(info, folder / m.value) for m, info in chosen.items()}
    total = sum(info.n_instances for info in chosen.values())
    with progress_bar(total=total, desc="fetch", unit="instance", progress=progress, leave=False) as bar:
        return {m.value: source.files(info, folder / m.value, bar.update) for m, info in chosen.items()}


def segment_study_source(
    source: PacsStudy | FolderStudy,
    output: str | os.PathLike,
    store: bool = False,
    overwrite: bool = False,
    overrides: Mapping[Modality, str] | None = None,
    overwrite_output: bool | None = None,
    **segment_options,
) -> dict:
    """Identify the four series of a study, segment them and, with ``store``, store the SEG and SR back (STOW-RS).

    Args:
        source: the study (:class:`PacsStudy` or :class:`FolderStudy`).
        output: the results folder (appears only when complete; see :func:`~monai_iunet.clinical.segment`).
        store: store the DICOM-SEG and the volumes SR into the study (a :class:`PacsStudy` only).
        overwrite: replace results in ``output`` and store a new version when the study already holds results.
        overrides: a SeriesInstanceUID per modality, taken as given.
        overwrite_output: replace results in ``output`` (default: ``overwrite``); a cohort redoes an interrupted
            study with it.
        segment_options: passed to :func:`~monai_iunet.clinical.segment` (``bundle``, ``device``, ``segmenter``...).

    Returns:
        the report of :func:`~monai_iunet.clinical.segment` with ``study`` (the series chosen) and, with ``store``,
        ``pacs`` (what was stored) added; also written to ``output/report.json``.

    Raises:
        SeriesIdentificationError: the four series cannot be told apart (ambiguous or missing), before any fetch.
        ExistingResultError: ``store`` without ``overwrite`` and the study already holds results of this tool.
        ClinicalInputError: any other bad input; nothing is stored then.
    """
    if store and not isinstance(source, PacsStudy):
        raise ClinicalInputError("--store needs a study on a DICOMweb server (--dicomweb URL).")
    start = time.perf_counter()
    infos = source.series_infos()
    chosen = identify_series(infos, overrides)
    logger.info("%s: series chosen\n%s", source, choice_table(infos, chosen))
    earlier, version = _check_earlier(source.pacs, store, overwrite) if isinstance(source, PacsStudy) else ([], 1)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", suffix=".series", dir=output.parent) as tmp:
        t = time.perf_counter()
        files = _fetch(source, chosen, Path(tmp), segment_options.get("progress"))
        fetch_s = time.perf_counter() - t
        replace = overwrite if overwrite_output is None else overwrite_output
        report = segment(**files, output=output, overwrite=replace, **segment_options)
    report["timings"]["fetch_s"] = fetch_s
    report["study"] = {
        "source": repr(source),
        "study_uid": source.study_uid,
        "series": {m.value: {"uid": i.series_uid, "description": i.description} for m, i in chosen.items()},
        "earlier_results": earlier,
    }
    if store:
        t = time.perf_counter()
        report["pacs"] = _store(source.pacs, output, version, earlier)
        report["timings"]["store_s"] = time.perf_counter() - t
    report["timings"]["study_total_s"] = time.perf_counter() - start
    tmp_report = output / ".report.json.partial"
    tmp_report.write_text(json.dumps(report, indent=4))
    os.replace(tmp_report, output / "report.json")
    return report
