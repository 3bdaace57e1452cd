"""Synthetic whole-head MR studies as scanners export them: a folder of series, one of which is which unknown.

One whole head (:func:`~monai_iunet.data.synthetic_head.synthesize_head_case`) is "acquired" series by series, on
each series' own grid (3D isotropic, 2D thick slices, sagittal or axial) after a known rigid patient motion, and
written as DICOM series (and/or NIfTI with dcm2niix-like JSON sidecars) with the tags real series carry: vendor-like
SeriesDescriptions, Manufacturer, EchoTime, RepetitionTime, InversionTime, ScanningSequence, SequenceName,
MRAcquisitionType, ImageType, ContrastBolusAgent, FrameOfReferenceUID, DiffusionBValue. A study holds a 3-plane
localizer, T1, DWI (b = 0, 500, 1000) and its ADC map, T1ce, T2 and FLAIR in the vendor's order.

Layout of ``output_dir``::

    dicom/<NN>_<description>/...dcm      (formats include "dicom"; the localizer in three plane sub-folders)
    nifti/<NN>_<description>.nii.gz/.json/.bval (formats include "nifti"; no localizer)
    truth/{flair,t1,t1ce,t2}.nii.gz      the skull-stripped modalities aligned on the T1ce grid (the BraTS-style case)
    truth/seg.nii.gz, truth/brain_mask.nii.gz, truth/head_t1ce.nii.gz, truth/series.json, truth/motion.json
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.data.synthetic_exports import rotation_matrix, write_dicom_series
from monai_iunet.data.synthetic_head import head_to_image, synthesize_head_case

__all__ = ["VENDOR_PROTOCOLS", "make_head_study"]

_SAG = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # rows posterior, columns inferior
_T1_3D = {"ScanningSequence": ["GR", "IR"], "MRAcquisitionType": "3D"}
_SE_2D = {"ScanningSequence": "SE", "MRAcquisitionType": "2D"}
_IR_2D = {"ScanningSequence": ["SE", "IR"], "MRAcquisitionType": "2D"}
_EPI = {"ScanningSequence": "EP", "MRAcquisitionType": "2D"}
_LOC = {"ScanningSequence": "GR", "MRAcquisitionType": "2D", "EchoTime": 4.0, "RepetitionTime": 8.6}
_TFE = {"ScanningSequence": "GR", "MRAcquisitionType": "3D", "EchoTime": 3.7, "RepetitionTime": 8.1}

VENDOR_PROTOCOLS: dict[str, dict] = {
    "SIEMENS": {
        "localizer": ("localizer", {**_LOC, "ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM"]}),
        Modality.T1: (
            "t1_mprage_sag_p2_iso",
            {**_T1_3D, "EchoTime": 2.98, "RepetitionTime": 2300, "InversionTime": 900},
        ),
        "dwi": ("ep2d_diff_3scan_trace_p2", {**_EPI, "EchoTime": 89, "RepetitionTime": 6000}),
        "adc": ("ep2d_diff_3scan_trace_p2_ADC", {**_EPI, "EchoTime": 89, "RepetitionTime": 6000}),
        Modality.T1CE: (
            "T1 MPRAGE POST GD",
            {**_T1_3D, "EchoTime": 2.98, "RepetitionTime": 2300, "InversionTime": 900},
        ),
        Modality.T2: ("t2_tse_tra", {**_SE_2D, "EchoTime": 98, "RepetitionTime": 5000}),
        Modality.FLAIR: (
            "t2_tirm_tra_dark-fluid",
            {**_IR_2D, "EchoTime": 81, "RepetitionTime": 9000, "InversionTime": 2500},
        ),
        "agent": "Gadovist",
        "order": ("localizer", Modality.T1, Modality.T2, Modality.FLAIR, "dwi", "adc", Modality.T1CE),
    },
    "GE MEDICAL SYSTEMS": {
        "localizer": ("3-Plane Loc", {**_LOC, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}),
        Modality.T1: ("Sag 3D T1 BRAVO", {**_T1_3D, "EchoTime": 3.2, "RepetitionTime": 8.2, "InversionTime": 450}),
        "dwi": ("Ax DWI", {**_EPI, "EchoTime": 78, "RepetitionTime": 7000}),
        "adc": ("Apparent Diffusion Coefficient (mm2/s)", {**_EPI, "EchoTime": 78, "RepetitionTime": 7000}),
        Modality.T1CE: ("3D T1 +C", {**_T1_3D, "EchoTime": 3.2, "RepetitionTime": 8.2, "InversionTime": 450}),
        Modality.T2: ("AX T2 FSE", {**_SE_2D, "EchoTime": 102, "RepetitionTime": 6000}),
        Modality.FLAIR: ("AX FLAIR", {**_IR_2D, "EchoTime": 120, "RepetitionTime": 9000, "InversionTime": 2250}),
        "agent": "MULTIHANCE",
        # T2 and FLAIR after contrast
        "order": ("localizer", Modality.T1, "dwi", "adc", Modality.T1CE, Modality.T2, Modality.FLAIR),
    },
    "Philips": {
        "localizer": ("Survey", {**_LOC, "ImageType": ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]}),
        Modality.T1: ("T1W_3D_TFE", _TFE),
        "dwi": ("DWI_SENSE", {**_EPI, "EchoTime": 85, "RepetitionTime": 5200}),
        "adc": ("dADC", {**_EPI, "EchoTime": 85, "RepetitionTime": 5200}),
        Modality.T1CE: ("T1W_3D_TFE_GD", _TFE),
        Modality.T2: ("T2W_TSE", {**_SE_2D, "EchoTime": 100, "RepetitionTime": 3000}),
        Modality.FLAIR: ("FLAIR_longTR", {**_IR_2D, "EchoTime": 125, "RepetitionTime": 11000, "InversionTime": 2800}),
        "agent": "Gadovist",
        "order": ("localizer", Modality.T2, Modality.FLAIR, "dwi", "adc", Modality.T1, Modality.T1CE),
    },
}
"""Per manufacturer: SeriesDescription and acquisition tags of each series, the contrast agent, the series order."""

_GRIDS = {  # field of view (mm) and voxel size (mm) of each series before ``voxel_scale``; direction; tilt (degrees)
    Modality.T1CE: ((230.0, 230.0, 180.0), (0.9, 0.9, 1.2), None, (3.0, 0.0, 0.0)),
    Modality.T1: ((240.0, 240.0, 176.0), (1.0, 1.0, 1.0), _SAG, (0.0, 0.0, 0.0)),
    Modality.T2: ((230.0, 230.0, 150.0), (0.9, 0.9, 3.0), None, (0.0, 0.0, 0.0)),
    Modality.FLAIR: ((230.0, 230.0, 150.0), (1.0, 1.0, 4.0), None, (10.0, 0.0, 0.0)),
    "dwi": ((230.0, 230.0, 150.0), (1.8, 1.8, 5.0), None, (0.0, 0.0, 0.0)),
}


def _grid(fov: Sequence[float], spacing: Sequence[float], direction: np.ndarray, centre: np.ndarray) -> sitk.Image:
    size = np.maximum(np.round(np.asarray(fov) / np.asarray(spacing)).astype(int), 3)
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection(direction.flatten().tolist())
    image.SetOrigin((centre - direction @ ((size - 1) * np.asarray(spacing) / 2)).tolist())
    return image


def _series_grid(name: str, scale: float, centre: np.ndarray) -> sitk.Image:
    fov, spacing, base, tilt = _GRIDS[name]
    direction = rotation_matrix(tilt) @ (np.eye(3) if base is None else base)
    return _grid(fov, np.asarray(spacing) * scale, direction, centre)


def _safe(description: str) -> str:
    return re.sub(r"[^A-Za-z0-9+]+", "_", description).strip("_")


def _nifti(image: sitk.Image, path: Path, meta: dict, b_values: Sequence[float] = ()) -> None:
    """An image file with a dcm2niix-like JSON sidecar (times in seconds)."""
    stored = sitk.GetImageFromArray(np.clip(np.rint(sitk.GetArrayFromImage(image)), 0, 65535).astype(np.uint16))
    stored.CopyInformation(image)
    sitk.WriteImage(stored, str(path) + ".nii.gz")
    sidecar = {k: v for k, v in meta.items() if k not in ("EchoTime", "RepetitionTime", "InversionTime")}
    for key in ("EchoTime", "RepetitionTime", "InversionTime"):
        if key in meta:
            sidecar[key] = float(meta[key]) / 1000.0
    if isinstance(sidecar.get("ScanningSequence"), list):
        sidecar["ScanningSequence"] = "_".join(sidecar["ScanningSequence"])
    Path(str(path) + ".json").write_text(json.dumps(sidecar, indent=2))
    if b_values:
        Path(str(path) + ".bval").write_text(" ".join(f"{b:g}" for b in b_values) + "\n")


def _adc_map(t2: sitk.Image) -> sitk.Image:
    """An ADC map (mm²/s) from a T2 image: about 0.8e-3 in tissue, up to 3e-3 in fluid (T2-bright)."""
    array = sitk.GetArrayFromImage(t2)
    reference = np.percentile(array[array > np.percentile(array, 60)], 99) + 1e-6
    fluid = np.clip((array / reference - 0.55) / 0.45, 0.0, 1.0)
    adc = sitk.GetImageFromArray((0.75e-3 + 2.25e-3 * fluid).astype(np.float32))
    adc.CopyInformation(t2)
    return adc


def _localizer(head_t1: sitk.Image, centre: np.ndarray, motion: sitk.Transform, scale: float) -> list[sitk.Image]:
    planes = []
    for direction in (_SAG, np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T, np.eye(3)):
        grid = _grid((260.0, 260.0, 20.0), (2.0 * scale, 2.0 * scale, 10.0), direction, centre)
        planes.append(sitk.Resample(head_t1, grid, motion, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    return planes


def make_head_study(
    output_dir: str | os.PathLike,
    seed: int = 0,
    manufacturer: str | None = None,
    resolution_mm: float = 1.5,
    voxel_scale: float = 1.0,
    formats: Sequence[str] = ("dicom",),
    motion_degrees: float = 4.0,
    motion_mm: float = 4.0,
    extra_t1ce: bool = False,
    frame_of_reference: bool = True,
    patient_id: str | None = None,
) -> dict:
    """Write one synthetic whole-head study (localizer, T1, DWI, ADC, T1ce, T2, FLAIR) and its truth.

    Args:
        output_dir: folder to write into; see the module docstring for its layout.
        seed: seed of the head, the tumour and the motions.
        manufacturer: a key of :data:`VENDOR_PROTOCOLS` (default: chosen by ``seed``).
        resolution_mm: voxel size of the synthetic head the series are acquired from.
        voxel_scale: multiplies every series' voxel size (1: the T1ce grid is 256 × 256 × 150; 3 for small tests).
        formats: any of ``"dicom"`` and ``"nifti"``.
        motion_degrees, motion_mm: typical rigid motion of each series but the T1ce (the reference).
        extra_t1ce: add a second post-contrast 3D T1 (an ambiguous study).
        frame_of_reference: write FrameOfReferenceUID (``False``: a source a DICOM-SEG cannot reference).
        patient_id: PatientID (default ``"HEAD-<seed>"``).

    Returns:
        ``{"dicom": {key: folder}, "nifti": {key: file}, "truth": {...}, "series": {key: SeriesInstanceUID},
        "manufacturer": ...}`` with keys ``localizer, t1, t1ce, t2, flair, dwi, adc`` (and ``t1ce_2``).
    """
    unknown = set(formats) - {"dicom", "nifti"}
    if unknown:
        raise ValueError(f"formats must be among ('dicom', 'nifti'), got {sorted(unknown)}.")
    vendors = sorted(VENDOR_PROTOCOLS)
    manufacturer = manufacturer or vendors[seed % len(vendors)]
    protocol = VENDOR_PROTOCOLS[manufacturer]
    root = Path(output_dir)
    rng = np.random.default_rng([seed, 11])
    case = synthesize_head_case(resolution_mm, seed=np.random.default_rng([seed, 1]))
    head = {m: head_to_image(case["image"][i], case["affine"]) for i, m in enumerate(MODALITY_ORDER)}
    centre = np.array([0.0, 10.0, 5.0])  # LPS mm: the middle of the brain, roughly
    study = {
        "PatientID": patient_id or f"HEAD-{seed:04d}",
        "PatientName": f"Synthetic^Head{seed}",
        "StudyInstanceUID": generate_uid(),
        "FrameOfReferenceUID": generate_uid(),
        "StudyDate": "20240517",
    }
    order = list(protocol["order"]) + (["t1ce_2"] if extra_t1ce else [])
    result: dict = {"dicom": {}, "nifti": {}, "truth": {}, "series": {}, "motion": {}, "manufacturer": manufacturer}
    reference = _series_grid(Modality.T1CE, voxel_scale, centre)
    after_contrast = False
    for number, key in enumerate(order, start=1):
        after_contrast |= key in (Modality.T1CE, "t1ce_2")
        angles = np.zeros(3) if key == Modality.T1CE else rng.uniform(-1, 1, 3) * motion_degrees
        shift = np.zeros(3) if key == Modality.T1CE else rng.uniform(-1, 1, 3) * motion_mm
        motion = sitk.Euler3DTransform(centre.tolist(), *np.deg2rad(angles).tolist(), shift.tolist())
        result["motion"][key] = {"angles_deg": angles.tolist(), "translation_mm": shift.tolist()}
        description, tags = protocol.get(key, (None, None)) if key != "t1ce_2" else protocol[Modality.T1CE]
        if key == "t1ce_2":
            description = description + " repeat"
        tags = {**tags, "Manufacturer": manufacturer, "SeriesInstanceUID": generate_uid()}
        if after_contrast and key != Modality.T1:
            tags["ContrastBolusAgent"] = protocol["agent"]
        if not frame_of_reference:
            tags["FrameOfReferenceUID"] = None
        result["series"][key] = tags["SeriesInstanceUID"]
        name = f"{number:02d}_{_safe(description)}"
        images = _acquire(key, head, reference, centre, motion, voxel_scale)
        _write(root, name, key, images, description, number, study, tags, formats, result)
    _write_truth(root, case, head, reference, study, result)
    return result


def _acquire(key, head, reference, centre, motion, scale) -> list[tuple[sitk.Image, dict]]:
    """The images of one series on its grid, each with the tags of its instances (b-value, ImageType)."""
    inverse = motion.GetInverse()
    if key == "localizer":
        return [(image, {}) for image in _localizer(head[Modality.T1], centre, inverse, scale)]
    modality = Modality.T1CE if key == "t1ce_2" else key
    if modality in MODALITY_ORDER:
        grid = reference if key == Modality.T1CE else _series_grid(modality, scale, centre)
        image = sitk.Resample(head[modality], grid, inverse, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return [(image, {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]})]
    dwi_grid = _series_grid("dwi", scale, centre)
    t2 = sitk.Resample(head[Modality.T2], dwi_grid, inverse, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    adc = _adc_map(t2)
    if key == "adc":
        return [(adc * 1e6, {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]})]
    kinds = {"ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]}
    return [(t2 * sitk.Exp(adc * (-float(b))), {**kinds, "DiffusionBValue": float(b)}) for b in (0, 500, 1000)]


def _write(root, name, key, images, description, number, study, tags, formats, result) -> None:
    if "dicom" in formats:
        folder = root / "dicom" / name
        for part, (image, extra) in enumerate(images):
            sub = folder if len(images) == 1 else folder / f"part{part + 1}"
            write_dicom_series(image, sub, description, number, study, tags={**tags, **extra})
        if len(images) > 1:  # one series: instance numbers run on across parts
            for n, f in enumerate(sorted(folder.rglob("*.dcm")), start=1):
                ds = pydicom.dcmread(f)
                ds.InstanceNumber = n
                ds.save_as(f)
        result["dicom"][key] = str(folder)
    if "nifti" in formats and key != "localizer":
        (root / "nifti").mkdir(parents=True, exist_ok=True)
        meta = {k: v for k, v in tags.items() if v is not None and k != "DiffusionBValue"}
        meta.update({"SeriesDescription": description, "SeriesNumber": number, "Modality": "MR"})
        meta.update({k: v for k, v in images[0][1].items() if k == "ImageType"})
        b_values = [extra["DiffusionBValue"] for _, extra in images if "DiffusionBValue" in extra]
        image = images[-1][0] if b_values else images[0][0]  # a 3D file: the highest b-value
        _nifti(image, root / "nifti" / name, meta, b_values[-1:])
        result["nifti"][key] = str(root / "nifti" / name) + ".nii.gz"


def _write_truth(root, case, head, reference, study, result) -> None:
    truth = root / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    mask = sitk.Resample(head_to_image(case["brain_mask"], case["affine"]), reference, sitk.Transform(),
                         sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)  # fmt: skip
    seg = sitk.Resample(head_to_image(case["label"], case["affine"]), reference, sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)  # fmt: skip
    files = {"brain_mask": mask, "seg": seg}
    for m in MODALITY_ORDER:
        aligned = sitk.Resample(head[m], reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        if m == Modality.T1CE:
            files["head_t1ce"] = aligned
        files[m] = sitk.Mask(aligned, mask)
    for name, image in files.items():
        sitk.WriteImage(image, str(truth / f"{name}.nii.gz"), useCompression=True)
        result["truth"][name] = str(truth / f"{name}.nii.gz")
    (truth / "series.json").write_text(json.dumps(result["series"], indent=4))
    (truth / "motion.json").write_text(json.dumps(result["motion"], indent=4))
    result["truth"]["series"] = str(truth / "series.json")
    result["study"] = study
