"""A study folder as a scanner (or dcm2niix) exports it: find its series, identify the four, segment.

:func:`scan_study` reads one header per file (no pixel data) of every DICOM file below the folder and groups them by
SeriesInstanceUID; image files (NIfTI, NRRD, MHA) count as one series each, described by their dcm2niix/BIDS JSON
sidecar when there is one (EchoTime, RepetitionTime, InversionTime in seconds there) or else by their file name.
:func:`segment_study` prints the choice table, refuses an ambiguous study with the candidates listed, and runs
:func:`~monai_iunet.clinical.pipeline.segment` on the four series it found.

Example::

    report = segment_study("exports/patient_0001", "results/patient_0001", overrides={Modality.T1CE: "1.2.3"})
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pydicom
import SimpleITK as sitk

from monai_iunet.brats import Modality
from monai_iunet.clinical.io import ClinicalInputError
from monai_iunet.clinical.series import SeriesIdentificationError, SeriesInfo, choice_table, identify_series

__all__ = ["IMAGE_SUFFIXES", "scan_study", "segment_study"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
"""Image files that count as one series each."""


def _image_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def _sidecar_info(path: Path, suffix: str) -> SeriesInfo:
    """A :class:`SeriesInfo` of an image file from its JSON sidecar (dcm2niix/BIDS keys) and its header."""
    stem = path.name[: -len(suffix)]
    sidecar = path.with_name(stem + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()

    def ms(key: str) -> float | None:  # BIDS times are in seconds
        value = meta.get(key)
        return None if value is None else float(value) * 1000.0

    bval = path.with_name(stem + ".bval")
    b_values = [float(v) for v in bval.read_text().split()] if bval.is_file() else []
    image_type = meta.get("ImageType", [])
    return SeriesInfo(
        series_uid=str(meta.get("SeriesInstanceUID") or path.name),
        description=str(meta.get("SeriesDescription") or stem),
        modality=str(meta.get("Modality") or "MR"),
        series_number=meta.get("SeriesNumber"),
        protocol_name=str(meta.get("ProtocolName", "")),
        sequence_name=str(meta.get("SequenceName", "")),
        scanning_sequence="\\".join(meta.get("ScanningSequence", "").split("_")),
        acquisition_type=str(meta.get("MRAcquisitionType", "")).upper(),
        echo_time=ms("EchoTime"),
        repetition_time=ms("RepetitionTime"),
        inversion_time=ms("InversionTime"),
        contrast_agent=str(meta.get("ContrastBolusAgent", "")),
        b_value=max(b_values) if b_values else None,
        image_type=tuple(str(v).upper() for v in (image_type if isinstance(image_type, list) else [image_type])),
        n_instances=int(size[2]) if len(size) > 2 else 1,
        frame_of_reference_uid=str(meta.get("FrameOfReferenceUID", "")),
        manufacturer=str(meta.get("Manufacturer", "")),
        path=str(path),
    )


def scan_study(folder: str | os.PathLike) -> list[SeriesInfo]:
    """Every series below ``folder``: DICOM files grouped by SeriesInstanceUID, and image files.

    Raises:
        ClinicalInputError: the folder does not exist or holds no series.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ClinicalInputError(f"--study {root}: no such folder; give the folder of one exported study.")
    headers: dict[str, pydicom.Dataset] = {}
    files: dict[str, list[str]] = {}
    images = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        suffix = _image_suffix(path)
        if suffix is not None:
            images.append(_sidecar_info(path, suffix))
            continue
        if path.suffix.lower() in (".json", ".bval", ".bvec", ".txt", ".png", ".csv"):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: ignored, as a viewer would
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if not uid or "SOPClassUID" not in ds:
            continue
        headers.setdefault(uid, ds)
        files.setdefault(uid, []).append(str(path))
    series = [
        SeriesInfo.from_dataset(headers[uid], n_instances=len(f), path=os.path.commonpath(f)).replace(files=tuple(f))
        for uid, f in files.items()
    ]
    if not series and not images:
        raise ClinicalInputError(
            f"--study {root}: no DICOM series and no image files (NIfTI, NRRD, MHA) found in the folder."
        )
    return series + images


def segment_study(
    study: str | os.PathLike,
    output: str | os.PathLike,
    overrides: Mapping[Modality, str] | None = None,
    show: Callable[[str], None] | None = None,
    **segment_kwargs,
) -> dict:
    """Identify the four series of a study folder and segment them.

    Args:
        study: the study folder (DICOM files in any folder structure, or image files with JSON sidecars).
        output: the output folder.
        overrides: SeriesInstanceUID (or image file name) per modality, taken as given.
        show: called with the choice table (default: logged at INFO).
        segment_kwargs: passed to :func:`~monai_iunet.clinical.pipeline.segment` (``bundle``, ``skull_strip``,
            ``reference``, ...).

    Returns:
        the report, with ``series`` (what was chosen and why) and ``study_series`` (the number of series).

    Raises:
        AmbiguousSeriesError: two or more candidates for a modality (listed); nothing is written.
        MissingSeriesError: no candidate for a modality; nothing is written.
    """
    from monai_iunet.clinical.pipeline import segment
    from monai_iunet.clinical.series import classify_series

    show = show or logger.info
    infos = scan_study(study)
    try:
        chosen = identify_series(infos, overrides)
    except SeriesIdentificationError:
        show(choice_table(infos))
        raise
    show(choice_table(infos, chosen))
    chosen_report = {}
    for modality, info in chosen.items():
        result = classify_series(info)
        by = "override" if overrides and modality in overrides else result.by
        chosen_report[modality.value] = {
            "SeriesInstanceUID": info.series_uid,
            "SeriesDescription": info.description,
            "by": by,
            "reasons": list(result.reasons),
        }
    sources = {m.value: list(info.files) if info.files else info.path for m, info in chosen.items()}
    extra = {"study": str(study), "study_series": len(infos), "series": chosen_report}
    return segment(**sources, output=output, extra_report=extra, **segment_kwargs)
