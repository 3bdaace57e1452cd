"""Synthetic scanner exports: the four MR series of one synthetic BraTS-like case as a scanner would write them.

A case from :func:`monai_iunet.data.synthesize_brats_case` is placed on the **reference grid** (the T1ce series: a
slightly tilted 1 mm grid). Every other series is then "acquired" on its own grid (other spacing, thick slices,
tilted planes) after a known rigid patient motion, as happens between the series of one MR session:

- ``t1ce``: the reference, 1 mm isotropic, planes tilted by a few degrees;
- ``t1``: 1 mm isotropic, moved;
- ``t2``: 0.9 × 0.9 × 3 mm axial slices, moved;
- ``flair``: 1.1 × 1.1 × 2 mm, planes tilted by 12°, moved.

Every series is written as a DICOM series (MR Image Storage, one file per slice, with patient/study/series/SOP
instance UIDs, ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness and a SeriesDescription
such as ``"T1 post-contrast"``) and/or as a NIfTI file. The truth is kept next to it: the aligned modalities and
the label map on the reference grid, and the motion of each series, to test a registration against.

Layout of ``output_dir``::

    dicom/<modality>/IM_0001.dcm ...     (formats include "dicom")
    nifti/<modality>.nii.gz              (formats include "nifti")
    truth/<modality>.nii.gz, truth/seg.nii.gz, truth/brain_mask.nii.gz, truth/motion.json
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.data.synthetic_brats import synthesize_brats_case

__all__ = [
    "ACQUISITIONS",
    "ACQUISITION_ORDER",
    "SERIES_DESCRIPTIONS",
    "make_scanner_export",
    "rotation_matrix",
    "synthesize_other_body_part",
    "write_dicom_series",
]

SERIES_DESCRIPTIONS = {
    Modality.T1: "T1",
    Modality.T1CE: "T1 post-contrast",
    Modality.T2: "T2",
    Modality.FLAIR: "FLAIR",
}
"""SeriesDescription of each modality's DICOM series (what a Deploy app's selection rules match)."""

ACQUISITIONS: dict[Modality, dict] = {
    Modality.T1CE: {"spacing": (1.0, 1.0, 1.0), "tilt": (3.0, 0.0, 0.0), "motion": False},
    Modality.T1: {"spacing": (1.0, 1.0, 1.0), "tilt": (0.0, 0.0, 0.0), "motion": True},
    Modality.T2: {"spacing": (0.9, 0.9, 3.0), "tilt": (0.0, 0.0, 0.0), "motion": True},
    Modality.FLAIR: {"spacing": (1.1, 1.1, 2.0), "tilt": (12.0, 0.0, 0.0), "motion": True},
}
"""Grid of each series: voxel size in mm, tilt of the planes (degrees about x, y, z), and whether the patient moved."""

ACQUISITION_ORDER = (Modality.T1, Modality.T1CE, Modality.T2, Modality.FLAIR)
"""The order the scanner acquired the series in: their SeriesNumber 1 to 4."""


def rotation_matrix(degrees: Sequence[float]) -> np.ndarray:
    """The 3×3 rotation ``Rz @ Ry @ Rx`` for angles in degrees about x, y and z (SimpleITK's Euler3D order)."""
    ax, ay, az = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _grid(size: Sequence[int], spacing: Sequence[float], direction: np.ndarray, centre: np.ndarray) -> sitk.Image:
    """An empty float32 image of ``size`` whose physical centre is ``centre``."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection(direction.flatten().tolist())
    half = direction @ ((np.asarray(size) - 1) * np.asarray(spacing) / 2)
    image.SetOrigin((centre - half).tolist())
    return image


def synthesize_other_body_part(spatial_size: Sequence[int] = (64, 64, 64), seed: int = 0) -> np.ndarray:
    """A volume of another body part (a leg-like elliptic cylinder with bone and muscle, filling the field of view
    along its last axis), to test that registering it to a brain fails loudly. Array order ``(x, y, z)``."""
    rng = np.random.default_rng(seed)
    shape = np.asarray(spatial_size)
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij"))
    x, y = (grid[0] - shape[0] * 0.55) / (shape[0] * 0.26), (grid[1] - shape[1] * 0.5) / (shape[1] * 0.23)
    r = np.sqrt(x**2 + y**2)
    image = np.where(r < 1.0, 0.4, 0.0) + np.where(r < 0.75, 0.5, 0.0)  # fat ring around muscle
    bone = np.sqrt((x + 0.2) ** 2 + (y - 0.1) ** 2) < 0.22
    image[bone] = 0.05
    image[np.sqrt((x + 0.2) ** 2 + (y - 0.1) ** 2) < 0.12] = 0.9  # marrow
    image = image + 0.03 * rng.standard_normal(image.shape) * (r < 1.0)
    return (np.clip(image, 0, None) * 800.0).astype(np.float32)


def _stored_pixels(image: sitk.Image) -> np.ndarray:
    """The voxel values as a scanner stores them: rounded, clipped to 0..65535, uint16, array order (z, y, x)."""
    return np.clip(np.rint(sitk.GetArrayFromImage(image)), 0, 65535).astype(np.uint16)


def write_dicom_series(
    image: sitk.Image,
    folder: str | os.PathLike,
    series_description: str,
    series_number: int,
    study: Mapping[str, str],
    body_part: str = "BRAIN",
    tags: Mapping[str, object] | None = None,
) -> list[str]:
    """Write a 3D image as an MR DICOM series, one file per slice (``IM_0001.dcm`` ...), with pydicom.

    Args:
        image: the volume (any pixel type; stored as uint16 after rounding and clipping to 0..65535).
        folder: output folder (created).
        series_description: SeriesDescription, e.g. ``"T1 post-contrast"``.
        series_number: SeriesNumber.
        study: ``PatientID``, ``PatientName``, ``StudyInstanceUID``, ``FrameOfReferenceUID``, ``StudyDate``.
        body_part: BodyPartExamined.
        tags: attributes set on every file after the defaults (EchoTime, ContrastBolusAgent, ...); ``None`` removes
            one (e.g. ``{"FrameOfReferenceUID": None}``).

    Returns:
        the written files, in slice order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = _stored_pixels(image)  # (z, y, x)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    series_uid = generate_uid()
    now = datetime.datetime(2024, 5, 17, 10, 30, 0) + datetime.timedelta(minutes=5 * series_number)
    files = []
    for k, plane in enumerate(pixels):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName = study["PatientID"], study["PatientName"]
        ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
        ds.StudyInstanceUID, ds.StudyID = study["StudyInstanceUID"], "1"
        ds.StudyDate, ds.StudyTime = study["StudyDate"], "103000"
        ds.StudyDescription, ds.AccessionNumber, ds.ReferringPhysicianName = "MR HEAD synthetic", "SYN0001", ""
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, series_number, series_description
        ds.SeriesDate, ds.SeriesTime = study["StudyDate"], now.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = study["StudyDate"], now.strftime("%H%M%S")
        ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "MR", "monai-iunet synthetic", body_part
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = study["FrameOfReferenceUID"], ""
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "3D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.MagneticFieldStrength = 2000.0, 20.0, 1, 3.0
        ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (y), column spacing (x)
        ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[2])
        ds.SliceLocation = float(np.dot(ds.ImagePositionPatient, direction[:, 2]))
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = 0.0, 1.0
        ds.PixelData = plane.tobytes()
        for key, value in (tags or {}).items():
            if value is None:
                if key in ds:
                    delattr(ds, key)
            else:
                setattr(ds, key, value)
        path = folder / f"IM_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    return files


def _motion(rng: np.random.Generator, degrees: float, mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Euler angles (degrees) and translation (mm) of a random rigid motion of about the given magnitudes."""
    angles = rng.uniform(0.5, 1.0, 3) * degrees * rng.choice([-1.0, 1.0], 3)
    shift = rng.uniform(0.5, 1.0, 3) * mm * rng.choice([-1.0, 1.0], 3)
    return angles, shift


def make_scanner_export(
    output_dir: str | os.PathLike,
    spatial_size: Sequence[int] | int = (64, 64, 64),
    seed: int = 0,
    motion_degrees: float = 6.0,
    motion_mm: float = 6.0,
    formats: Sequence[str] = ("dicom", "nifti"),
    acquisitions: Mapping[str, Mapping] | None = None,
    patient_id: str = "SYNTH-0001",
    other_body_part: Sequence[str] = (),
) -> dict:
    """Write one synthetic scanner export (four MR series, not co-registered) and the truth to test against.

    Args:
        output_dir: folder to write into (created); see the module docstring for its layout.
        spatial_size: size of the reference (T1ce) grid in 1 mm voxels; the other series cover the same field of view.
        seed: seed of the case and of the motions.
        motion_degrees: typical rotation of each moved series about each axis (drawn in ±[0.5, 1] × this).
        motion_mm: typical translation along each axis, in mm (drawn the same way).
        formats: any of ``"dicom"`` and ``"nifti"``.
        acquisitions: grid of each series, as :data:`ACQUISITIONS` (the default).
        patient_id: PatientID of every series.
        other_body_part: modalities whose series show another body part instead of the brain (a bad input).

    Returns:
        ``{"dicom": {modality: folder}, "nifti": {modality: file}, "truth": {...files}, "motion": {...}}``.
    """
    unknown = set(formats) - {"dicom", "nifti"}
    if unknown:
        raise ValueError(f"formats must be among ('dicom', 'nifti'), got {sorted(unknown)}.")
    acquisitions = dict(ACQUISITIONS if acquisitions is None else acquisitions)
    root = Path(output_dir)
    rng = np.random.default_rng([seed, 7])
    image, label = synthesize_brats_case(spatial_size, seed=np.random.default_rng([seed, 0]))
    size = label.shape
    fov_centre = np.array([0.0, -20.0, 15.0])  # a head is not at the scanner's isocentre
    reference = _grid(size, (1.0, 1.0, 1.0), rotation_matrix(acquisitions[Modality.T1CE]["tilt"]), fov_centre)

    def on_reference(array: np.ndarray) -> sitk.Image:  # array (x, y, z) -> image on the reference grid
        out = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
        out.CopyInformation(reference)
        return out

    truth = {name: on_reference(image[MODALITY_ORDER.index(name)]) for name in MODALITY_ORDER}
    study = {
        "PatientID": patient_id,
        "PatientName": "Synthetic^Patient",
        "StudyInstanceUID": generate_uid(),
        "FrameOfReferenceUID": generate_uid(),
        "StudyDate": "20240517",
    }
    fov = np.asarray(size, dtype=np.float64)  # mm, the reference field of view
    result: dict = {"dicom": {}, "nifti": {}, "truth": {}, "motion": {}, "study": study}
    for number, name in enumerate(ACQUISITION_ORDER, start=1):
        spec = acquisitions[name]
        spacing = np.asarray(spec["spacing"], dtype=np.float64)
        direction = rotation_matrix(spec["tilt"])
        if name == Modality.T1CE:
            grid = reference
        else:
            grid = _grid(np.ceil(fov * 1.1 / spacing).astype(int), spacing, direction, fov_centre)
        angles, shift = _motion(rng, motion_degrees, motion_mm) if spec["motion"] else (np.zeros(3), np.zeros(3))
        # the patient moved: a point p of the reference frame is at M(p) = R (p - c) + c + t in this series
        motion = sitk.Euler3DTransform(fov_centre.tolist(), *np.deg2rad(angles).tolist(), shift.tolist())
        source = truth[name]
        if name in other_body_part:
            source = on_reference(synthesize_other_body_part(size, seed=seed))
        acquired = sitk.Resample(source, grid, motion.GetInverse(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        result["motion"][name] = {
            "angles_deg": angles.tolist(),
            "translation_mm": shift.tolist(),
            "centre_mm": fov_centre.tolist(),
            "matrix": np.asarray(motion.GetMatrix()).reshape(3, 3).tolist(),
            "spacing": spacing.tolist(),
            "tilt_deg": list(spec["tilt"]),
        }
        if "dicom" in formats:
            folder = root / "dicom" / name
            write_dicom_series(acquired, folder, SERIES_DESCRIPTIONS[name], number, study)
            result["dicom"][name] = str(folder)
        if "nifti" in formats:
            (root / "nifti").mkdir(parents=True, exist_ok=True)
            path = root / "nifti" / f"{name}.nii.gz"
            stored = sitk.GetImageFromArray(_stored_pixels(acquired))  # the values the DICOM files hold
            stored.CopyInformation(acquired)
            sitk.WriteImage(stored, str(path))
            result["nifti"][name] = str(path)
    (root / "truth").mkdir(parents=True, exist_ok=True)
    truth["seg"] = sitk.Cast(on_reference(label), sitk.sitkUInt8)
    truth["brain_mask"] = sitk.Cast(truth[Modality.T1CE] > 0, sitk.sitkUInt8)
    for name, volume in truth.items():
        path = root / "truth" / f"{name}.nii.gz"
        sitk.WriteImage(volume, str(path))
        result["truth"][name] = str(path)
    (root / "truth" / "motion.json").write_text(json.dumps(result["motion"], indent=4))
    result["truth"]["motion"] = str(root / "truth" / "motion.json")
    return result
