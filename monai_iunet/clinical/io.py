"""Reading the scanner's series: DICOM series folders (SimpleITK ``ImageSeriesReader``) or image files.

Every problem is a :class:`ClinicalInputError` whose message names the input (``--t1ce /path``) and says what to
do, so that the command line can print it without a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import SimpleITK as sitk
from highdicom.spatial import sort_datasets

from monai_iunet.errors import UserInputError

__all__ = ["ClinicalInputError", "Series", "check_same_study", "read_series"]


class ClinicalInputError(UserInputError):
    """An input of the clinical pipeline cannot be used; the message names it and says what to do."""


@dataclass
class Series:
    """One input series as read.

    Attributes:
        name: modality name (``"t1ce"``), used in messages and outputs.
        source: the path given.
        image: the 3D volume, float32, with its geometry (size, spacing, origin, direction) as read.
        files: the DICOM files in slice order (slice ``k`` of ``image`` is ``files[k]``); empty for image files.
        header: DICOM attributes of the first file (PatientID, StudyInstanceUID, SeriesInstanceUID, ...).
    """

    name: str
    source: str
    image: sitk.Image
    files: list[str] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)

    @property
    def is_dicom(self) -> bool:
        return bool(self.files)


_HEADER_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription", "Modality")


def _describe(name: str, source: str | os.PathLike | Sequence) -> str:
    if isinstance(source, (list, tuple)):
        return f"--{name} ({len(source)} DICOM files)"
    return f"--{name} {source}"


def _header(path: str) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM, or broken: the caller reports
        return None


def _sort_dicom_files(files: Sequence[str], what: str) -> list[str]:
    """Sort the files of one series along the slice normal (row × column direction), with highdicom."""
    headers = []
    for f in files:
        ds = _header(str(f))
        if ds is None or "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise ClinicalInputError(f"{what}: {f} is not a readable DICOM image slice (no position/orientation).")
        headers.append(ds)
    try:
        # DICOM's pixel index convention (column index right, row index down) and a right-handed frame axis: the
        # slices in ascending ImagePositionPatient · (row direction × column direction)
        return [str(ds.filename) for ds in sort_datasets(headers, index_convention="RD")]
    except ValueError as e:
        raise ClinicalInputError(f"{what}: the slices cannot be stacked into a volume ({e}).") from e


def _series_files(folder: Path, what: str, series_uids: Sequence[str]) -> list[str]:
    """The sorted files of the one image series in ``folder`` (chosen by ``series_uids`` when there are several)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise ClinicalInputError(
            f"{what}: the folder is empty; give a folder holding one DICOM series, or an image file."
        )
    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    image_ids = {}
    for uid in ids:
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        ds = _header(files[0]) if files else None
        if ds is not None and "Rows" in ds and "Columns" in ds:
            image_ids[uid] = (files, str(ds.get("SeriesDescription", "")))
    if not image_ids:
        raise ClinicalInputError(
            f"{what}: the folder holds no DICOM image series ({len(entries)} entries, none of them a DICOM image); "
            "give the folder of the MR series itself, or an image file (NIfTI, NRRD, MHA)."
        )
    chosen = [uid for uid in image_ids if uid in set(series_uids)]
    if len(image_ids) > 1 and len(chosen) != 1:
        listing = "; ".join(
            f"{uid} ({desc or 'no description'}, {len(f)} files)" for uid, (f, desc) in image_ids.items()
        )
        raise ClinicalInputError(
            f"{what}: the folder holds {len(image_ids)} DICOM series: {listing}. Choose one with --series-uid UID."
        )
    return image_ids[chosen[0] if chosen else next(iter(image_ids))][0]


def read_series(
    name: str, source: str | os.PathLike | Sequence[str] | sitk.Image, series_uids: Sequence[str] = ()
) -> Series:
    """Read one input series.

    Args:
        name: modality name, for messages (``"t1ce"``).
        source: a DICOM series folder, an image file (anything SimpleITK reads: NIfTI, NRRD, MHA, ...), a list of
            the DICOM files of one series (any order), or an already read ``SimpleITK.Image``.
        series_uids: SeriesInstanceUIDs to choose from when a folder holds several series.

    Returns:
        the :class:`Series`, its image cast to float32.

    Raises:
        ClinicalInputError: a missing path, an empty folder, a folder without DICOM images, several series and no
            choice, an unreadable file, or a volume that is not 3D with at least two slices.
    """
    what = _describe(name, source)
    files: list[str] = []
    if isinstance(source, sitk.Image):
        image, source = source, "<image>"
    else:
        if isinstance(source, (list, tuple)):
            files = _sort_dicom_files(source, what)
        else:
            path = Path(source)
            if not path.exists():
                raise ClinicalInputError(f"{what}: no such file or folder.")
            if path.is_dir():
                files = _series_files(path, what, series_uids)
        try:
            if files:
                reader = sitk.ImageSeriesReader()
                reader.SetFileNames(files)
                image = reader.Execute()
            else:
                image = sitk.ReadImage(str(source))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
            raise ClinicalInputError(f"{what}: cannot be read as an image ({first}).") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ClinicalInputError(
            f"{what}: expected a 3D scalar volume, got a {image.GetDimension()}D image with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel; give one MR series per modality."
        )
    if min(image.GetSize()) < 2:
        raise ClinicalInputError(
            f"{what}: a single-slice series (size {image.GetSize()}); give the whole 3D series (all its slices)."
        )
    header: dict[str, str] = {}
    if files:
        ds = _header(files[0])
        header = {k: str(ds.get(k, "")) for k in _HEADER_KEYS} if ds is not None else {}
    return Series(name=name, source=str(source), image=sitk.Cast(image, sitk.sitkFloat32), files=files, header=header)


def check_same_study(series: Mapping[str, Series], allow_mixed: bool = False) -> list[str]:
    """Check that the DICOM inputs share PatientID and StudyInstanceUID.

    Args:
        series: the inputs by modality name.
        allow_mixed: return the mismatches as warnings instead of raising.

    Returns:
        warnings (only with ``allow_mixed``).

    Raises:
        ClinicalInputError: the DICOM inputs belong to different patients or studies.
    """
    problems = []
    dicom = {k: s for k, s in series.items() if s.is_dicom}
    for key in ("PatientID", "StudyInstanceUID"):
        values = {k: s.header.get(key, "") for k, s in dicom.items()}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"--{k} {v!r}" for k, v in values.items())
            problems.append(f"the DICOM series have different {key}s: {listing}")
    if problems and not allow_mixed:
        raise ClinicalInputError(
            "; ".join(problems) + ". Give the series of one patient's study, or pass --allow-mixed-studies if this "
            "is intended (e.g. anonymised separately)."
        )
    return problems
