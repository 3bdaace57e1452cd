"""From scanner series to a segmentation on the reference scan: :func:`segment`."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import SimpleITK as sitk

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical.inference import BundleSegmenter
from monai_iunet.clinical.io import ClinicalInputError, Series, check_same_study, read_series
from monai_iunet.clinical.outputs import (
    atomic_output_dir,
    label_image,
    region_volumes_ml,
    write_dicom_seg,
    write_overview,
)
from monai_iunet.clinical.preprocessing import apply_mask, n4_correct, read_brain_mask, resample_to_reference
from monai_iunet.clinical.registration import register_rigid

__all__ = ["DEFAULT_BUNDLE", "RegistrationWarning", "segment"]

logger = logging.getLogger(__name__)

DEFAULT_BUNDLE = str(Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet")


class RegistrationWarning(UserWarning):
    """A registration looks failed but the pipeline was told to go on (``accept_failed_registration``)."""


def _versions() -> dict[str, str]:
    import highdicom
    import monai
    import pydicom
    import torch

    import monai_iunet

    return {
        "monai_iunet": monai_iunet.__version__,
        "monai": monai.__version__,
        "torch": torch.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "highdicom": highdicom.__version__,
        "pydicom": pydicom.__version__,
        "python": platform.python_version(),
    }


def _register_all(
    series: Mapping[str, Series], reference: str, accept_failed: bool
) -> tuple[dict[str, sitk.Image], dict[str, dict]]:
    """Register every series to the reference; returns the modalities on the reference grid and the metrics."""
    fixed = series[reference].image
    aligned, metrics = {reference: fixed}, {}
    for name, s in series.items():
        if name == reference:
            continue
        result = register_rigid(fixed, s.image)
        metrics[name] = result.as_dict()
        logger.info(
            "registered --%s to --%s: Mattes MI %.3f -> %.3f, rotation %.1f°, shift %.1f mm, foreground Dice %.2f",
            name,
            reference,
            result.metric_initial,
            result.metric_final,
            result.rotation_deg,
            result.translation_mm,
            result.foreground_dice,
        )
        if result.failed:
            message = (
                f"the registration of --{name} {s.source} to the reference --{reference} looks failed: "
                f"{'; '.join(result.problems)} (Mattes MI {result.metric_final:.3f}). Check that it is a series of "
                "the same patient's head"
            )
            if not accept_failed:
                raise ClinicalInputError(message + ", or pass --accept-failed-registration to go on anyway.")
            warnings.warn(message + ".", RegistrationWarning, stacklevel=3)
        aligned[name] = resample_to_reference(s.image, fixed, result.transform)
    return aligned, metrics


def segment(
    t1: str | os.PathLike | Sequence[str] | sitk.Image,
    t1ce: str | os.PathLike | Sequence[str] | sitk.Image,
    t2: str | os.PathLike | Sequence[str] | sitk.Image,
    flair: str | os.PathLike | Sequence[str] | sitk.Image,
    output: str | os.PathLike,
    bundle: str | os.PathLike = DEFAULT_BUNDLE,
    reference: Modality | str = Modality.T1CE,
    save_preprocessed: bool = False,
    brain_mask: str | os.PathLike | None = None,
    n4: bool = False,
    device: str | None = None,
    series_uids: Sequence[str] = (),
    overwrite: bool = False,
    allow_mixed_studies: bool = False,
    accept_failed_registration: bool = False,
    segmenter: BundleSegmenter | None = None,
) -> dict:
    """Segment a brain tumour from four MR series that are not co-registered; results on the reference grid.

    Reads each series (DICOM folder, file list or image file), checks that the DICOM series share patient and
    study, rigidly registers T1, T2 and FLAIR to the reference (T1ce by default), optionally corrects the bias field
    (N4) and applies a brain mask (inputs must otherwise be skull-stripped), runs the bundle's network, inferer and
    postprocessing, and writes into ``output`` (which appears only when complete):
    ``segmentation.nii.gz``, ``segmentation.dcm`` (when the reference is DICOM), ``report.json``, ``overview.png``
    and, with ``save_preprocessed``, ``preprocessed/{t1,t1ce,t2,flair}.nii.gz``.

    Args:
        t1, t1ce, t2, flair: the four series.
        output: the output folder.
        bundle: the MONAI bundle folder with trained weights (``models/model.pt``).
        reference: the series whose grid the results are on.
        save_preprocessed: keep the registered modalities on the reference grid.
        brain_mask: a brain mask on the reference grid, applied to every modality.
        n4: N4 bias-field correction of every series before registration.
        device: ``"cpu"`` or ``"cuda"`` (default: the bundle's choice).
        series_uids: SeriesInstanceUIDs to choose from when a folder holds several series.
        overwrite: replace results already in ``output``.
        allow_mixed_studies: go on (with a warning) when the DICOM series differ in PatientID/StudyInstanceUID.
        accept_failed_registration: go on (with a :class:`RegistrationWarning`) when a registration looks failed.
        segmenter: an already loaded :class:`BundleSegmenter` (the Deploy app keeps one); ``bundle``/``device``
            are then unused.

    Returns:
        the report (also written as ``report.json``).

    Raises:
        ClinicalInputError: a bad input; the message names it. Nothing is written then.
    """
    if str(reference).lower() not in MODALITY_ORDER:
        raise ClinicalInputError(f"--reference must be one of {tuple(map(str, MODALITY_ORDER))}, got {reference!r}.")
    reference = Modality(str(reference).lower())
    given = {Modality.T1: t1, Modality.T1CE: t1ce, Modality.T2: t2, Modality.FLAIR: flair}
    sources = {name: given[name] for name in MODALITY_ORDER}
    start = time.perf_counter()
    with atomic_output_dir(output, overwrite=overwrite) as tmp:
        series = {name: read_series(name, src, series_uids) for name, src in sources.items()}
        study_warnings = check_same_study(series, allow_mixed=allow_mixed_studies)
        for w in study_warnings:
            warnings.warn(w, UserWarning, stacklevel=2)
        mask = read_brain_mask(brain_mask, series[reference].image, reference) if brain_mask is not None else None
        timings = {"read_s": time.perf_counter() - start}
        if n4:
            t = time.perf_counter()
            for s in series.values():
                s.image = n4_correct(s.image)
            timings["n4_s"] = time.perf_counter() - t
        t = time.perf_counter()
        aligned, registration = _register_all(series, reference, accept_failed_registration)
        timings["register_resample_s"] = time.perf_counter() - t
        if mask is not None:
            aligned = {name: apply_mask(image, mask) for name, image in aligned.items()}
        segmenter = segmenter if segmenter is not None else _load_segmenter(bundle, device)
        label = _write_results(
            tmp, series[reference], aligned, segmenter, save_preprocessed, Path(output).name, timings
        )
        timings["total_s"] = time.perf_counter() - start
        report = {
            "inputs": {
                name: {"source": s.source, "format": "dicom" if s.is_dicom else "image", **s.header}
                for name, s in series.items()
            },
            "reference": reference,
            "reference_grid": {
                "size": list(label.GetSize()),
                "spacing": list(label.GetSpacing()),
                "origin": list(label.GetOrigin()),
                "direction": list(label.GetDirection()),
            },
            "bundle": str(segmenter.bundle),
            "labels": segmenter.labels.part_values,
            "volumes_ml": region_volumes_ml(label, segmenter.labels),
            "registration": registration,
            "preprocessing": {"n4": n4, "brain_mask": str(brain_mask) if brain_mask is not None else None},
            "warnings": study_warnings,
            "timings": timings,
            "versions": _versions(),
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=4))
    return report


def _load_segmenter(bundle: str | os.PathLike, device: str | None) -> BundleSegmenter:
    try:
        return BundleSegmenter(bundle, device=device)
    except FileNotFoundError as e:
        raise ClinicalInputError(f"--bundle: {e}") from None


def _write_results(
    tmp: Path,
    reference: Series,
    aligned: Mapping[str, sitk.Image],
    segmenter: BundleSegmenter,
    save_preprocessed: bool,
    title: str,
    timings: dict[str, float],
) -> sitk.Image:
    """Run the network on the aligned modalities and write the label map, DICOM-SEG and overview into ``tmp``."""
    t = time.perf_counter()
    prep = tmp / "preprocessed"
    prep.mkdir()
    files = {}
    for name in MODALITY_ORDER:
        files[name] = str(prep / f"{name}.nii.gz")
        sitk.WriteImage(aligned[name], files[name])
    label = label_image(segmenter(files), reference.image)
    timings["inference_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sitk.WriteImage(label, str(tmp / "segmentation.nii.gz"), useCompression=True)
    if reference.is_dicom:
        write_dicom_seg(label, segmenter.labels, reference.files, tmp / "segmentation.dcm")
    write_overview(reference.image, label, segmenter.labels, tmp / "overview.png", title=title)
    if not save_preprocessed:
        shutil.rmtree(prep)
    timings["write_s"] = time.perf_counter() - t
    return label
