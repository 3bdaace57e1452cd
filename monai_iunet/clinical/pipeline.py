"""From scanner series to a segmentation on the reference scan: :func:`segment`."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from monai_iunet.brats import MODALITY_ORDER, LabelConvention, Modality, Region
from monai_iunet.bundle.shipped import shipped_bundles_folder
from monai_iunet.clinical.brain_extraction import (
    SkullStripDecision,
    decide_skull_strip,
    deepbet_brain_mask,
    fill_brain_mask,
    tumour_outside_mask,
)
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
from monai_iunet.clinical.volumes_sr import write_volumes_sr
from monai_iunet.progress import showing_progress

__all__ = ["DEFAULT_BUNDLE", "BrainMaskWarning", "RegistrationWarning", "segment"]

logger = logging.getLogger(__name__)

DEFAULT_BUNDLE = str(shipped_bundles_folder() / "brats_iunet")
"""The BraTS bundle shipped with the package (in a clone: the repository's ``bundles/brats_iunet``)."""


class RegistrationWarning(UserWarning):
    """A registration looks failed but the pipeline was told to go on (``accept_failed_registration``)."""


class BrainMaskWarning(UserWarning):
    """Part of the predicted whole tumour lies outside the brain mask (the mask may cut the tumour)."""


MAX_TUMOUR_OUTSIDE_MASK = 0.01
"""Warn when more than this fraction of the predicted whole tumour lies outside the brain mask."""


@contextmanager
def _timed(timings: dict[str, float], step: str, steps: tqdm | None = None) -> Iterator[None]:
    """Record the wall time (``<step>_s``) and the CPU time of this process, all threads (``<step>_cpu_s``); with
    ``steps`` (the progress bar over the pipeline's steps), show the step beside the bar and count it when done."""
    if steps is not None:
        steps.set_postfix_str(step.replace("_", " "))
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timings[f"{step}_s"] = time.perf_counter() - wall
    timings[f"{step}_cpu_s"] = time.process_time() - cpu
    if steps is not None:
        steps.update()


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
    skull_strip: str = "auto",
    extra_report: Mapping | None = None,
    progress: bool | str | None = None,
) -> dict:
    """Segment a brain tumour from four MR series that are not co-registered; results on the reference grid.

    Reads each series (DICOM folder, file list or image file), checks that the DICOM series share patient and
    study, rigidly registers T1, T2 and FLAIR to the reference (T1ce by default), optionally corrects the bias field
    (N4), extracts the brain when the series show the whole head (deepbet on the T1, see ``skull_strip``) or applies
    the given brain mask, runs the bundle's network, inferer and postprocessing, and writes into ``output`` (which
    appears only when complete): ``segmentation.nii.gz``, ``segmentation.dcm`` (DICOM-SEG) and ``volumes_sr.dcm``
    (TID 1500 SR of the volumes) when the reference is DICOM with a FrameOfReferenceUID, ``brain_mask.nii.gz``
    (when a mask was used), ``report.json``, ``overview.png`` and, with ``save_preprocessed``,
    ``preprocessed/{t1,t1ce,t2,flair}.nii.gz``. What can be checked is checked before registration; what cannot be
    written is listed, with the reason, in the report's ``not_written`` (the rest is still written).

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
        segmenter: an already loaded :class:`BundleSegmenter`, to segment several studies without reloading the
            bundle (the Deploy app does not: it passes ``bundle``); ``bundle``/``device`` are then unused.
        skull_strip: ``"auto"`` (extract the brain when the reference is not already skull-stripped), ``"deepbet"``
            or ``"none"``; the decision and its reason are in the report's ``skull_strip``.
        extra_report: entries added to the report (e.g. how the series were identified).
        progress: draw a progress bar over the steps (read, N4, registration, brain extraction, inference,
            writing), with the step in progress: ``None`` (``MONAI_IUNET_PROGRESS``, else only when stderr is a
            terminal), ``"on"``, ``"off"``, ``"auto"`` or a bool (:mod:`monai_iunet.progress`).

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
    start, cpu_start = time.perf_counter(), time.process_time()
    title = Path(output).name
    shown = showing_progress(total=4 + bool(n4), desc=title[-24:], unit="step", progress=progress, leave=False)
    with shown as steps, atomic_output_dir(output, overwrite=overwrite) as tmp:
        steps.set_postfix_str("read")
        series = {name: read_series(name, src, series_uids) for name, src in sources.items()}
        study_warnings = check_same_study(series, allow_mixed=allow_mixed_studies)
        for w in study_warnings:
            warnings.warn(w, UserWarning, stacklevel=2)
        mask = read_brain_mask(brain_mask, series[reference].image, reference) if brain_mask is not None else None
        decision = decide_skull_strip(series[reference].image, skull_strip, brain_mask is not None)
        logger.info("brain extraction: %s (%s)", decision.method if decision.extract else "no", decision.reason)
        not_written = dicom_output_problems(series[reference])
        for name, why in not_written.items():
            logger.warning("%s will not be written: %s", name, why)
        segmenter = segmenter if segmenter is not None else _load_segmenter(bundle, device)
        timings = {"read_s": time.perf_counter() - start, "read_cpu_s": time.process_time() - cpu_start}
        steps.total += int(decision.extract)
        steps.update()
        if n4:
            with _timed(timings, "n4", steps):
                for s in series.values():
                    s.image = n4_correct(s.image)
        with _timed(timings, "register_resample", steps):
            aligned, registration = _register_all(series, reference, accept_failed_registration)
        if decision.extract:
            with _timed(timings, "skull_strip", steps):
                mask = fill_brain_mask(deepbet_brain_mask(aligned[Modality.T1]))
        if mask is not None:
            aligned = {name: apply_mask(image, mask) for name, image in aligned.items()}
            sitk.WriteImage(mask, str(tmp / "brain_mask.nii.gz"), useCompression=True)
        label = _write_results(
            tmp, series[reference], aligned, segmenter, save_preprocessed, title, timings, not_written, steps
        )
        timings["total_s"] = time.perf_counter() - start
        timings["total_cpu_s"] = time.process_time() - cpu_start
        volumes = region_volumes_ml(label, segmenter.labels)
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
            "volumes_ml": volumes,
            "registration": registration,
            "preprocessing": {"n4": n4, "brain_mask": str(brain_mask) if brain_mask is not None else None},
            "skull_strip": _mask_report(decision, mask, label, segmenter.labels, study_warnings),
            "written": sorted([p.name for p in tmp.iterdir()] + ["report.json"]),
            "not_written": not_written,
            "warnings": study_warnings,
            "timings": timings,
            "versions": _versions(),
            **dict(extra_report or {}),
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=4))
    return report


def dicom_output_problems(reference: Series) -> dict[str, str]:
    """Why the DICOM outputs (SEG, SR) cannot be written for this reference series, checked before the work.

    Returns:
        ``{file name: reason}``; empty when they can be written.
    """
    if not reference.is_dicom:
        why = "the reference series is an image file, not DICOM (a DICOM-SEG references DICOM instances)"
        return {"segmentation.dcm": why, "volumes_sr.dcm": why}
    import pydicom

    header = pydicom.dcmread(reference.files[0], stop_before_pixels=True)
    if not str(header.get("FrameOfReferenceUID", "")).strip():
        why = (
            f"the reference series {reference.header.get('SeriesInstanceUID', reference.source)} has no "
            "FrameOfReferenceUID, which a DICOM-SEG must share with its source; fix the series' header "
            "(or use another reference with --reference)"
        )
        return {"segmentation.dcm": why, "volumes_sr.dcm": "no DICOM-SEG to reference: " + why}
    return {}


def _mask_report(
    decision: SkullStripDecision,
    mask: sitk.Image | None,
    label: sitk.Image,
    labels: LabelConvention,
    report_warnings: list[str],
) -> dict:
    """The brain-extraction decision, the mask volume, and the check of the mask against the predicted WT."""
    out = {**decision.as_dict(), "mask_ml": None, "tumour_outside_mask": None}
    if mask is None:
        return out
    out["mask_ml"] = float(sitk.GetArrayViewFromImage(mask).sum()) * float(np.prod(mask.GetSpacing())) / 1000.0
    outside = tumour_outside_mask(mask, labels.region_masks(sitk.GetArrayViewFromImage(label))[Region.WT])
    out["tumour_outside_mask"] = outside
    if outside > MAX_TUMOUR_OUTSIDE_MASK:
        message = (
            f"{outside:.1%} of the predicted whole tumour touches the edge of the brain mask: the mask may cut the "
            "tumour; check brain_mask.nii.gz and overview.png, or pass --skull-strip none with your own --brain-mask"
        )
        warnings.warn(message, BrainMaskWarning, stacklevel=3)
        report_warnings.append(message)
    return out


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
    not_written: dict[str, str],
    steps: tqdm | None = None,
) -> sitk.Image:
    """Run the network on the aligned modalities and write the label map, DICOM-SEG, volumes SR and overview into
    ``tmp``; what cannot be written is added to ``not_written`` with the reason, and the rest is still written."""
    prep = tmp / "preprocessed"
    with _timed(timings, "inference", steps):
        prep.mkdir()
        files = {}
        for name in MODALITY_ORDER:
            files[name] = str(prep / f"{name}.nii.gz")
            sitk.WriteImage(aligned[name], files[name])
        label = label_image(segmenter(files), reference.image)
    with _timed(timings, "write", steps):
        sitk.WriteImage(label, str(tmp / "segmentation.nii.gz"), useCompression=True)
        _write_dicom_outputs(tmp, reference, label, segmenter.labels, not_written)
        try:
            write_overview(reference.image, label, segmenter.labels, tmp / "overview.png", title=title)
        except Exception as e:  # a figure must not cost the results
            not_written["overview.png"] = f"{type(e).__name__}: {e}"
        if not save_preprocessed:
            shutil.rmtree(prep)
    return label


def _write_dicom_outputs(
    tmp: Path, reference: Series, label: sitk.Image, labels: LabelConvention, not_written: dict[str, str]
) -> None:
    """Write the DICOM-SEG and the volumes SR unless known not to be writable; failures are reported, not raised."""
    if "segmentation.dcm" in not_written:
        return
    try:
        write_dicom_seg(label, labels, reference.files, tmp / "segmentation.dcm")
    except Exception as e:  # highdicom refuses some sources; the other results are still written
        not_written["segmentation.dcm"] = f"highdicom could not write it: {type(e).__name__}: {e}"
        not_written["volumes_sr.dcm"] = "no DICOM-SEG to reference"
        (tmp / "segmentation.dcm").unlink(missing_ok=True)
        return
    try:
        volumes = region_volumes_ml(label, labels)
        write_volumes_sr(tmp / "segmentation.dcm", volumes, tmp / "volumes_sr.dcm", reference.files)
    except Exception as e:
        not_written["volumes_sr.dcm"] = f"highdicom could not write it: {type(e).__name__}: {e}"
        (tmp / "volumes_sr.dcm").unlink(missing_ok=True)
