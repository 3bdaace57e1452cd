"""Bringing registered series onto the reference grid, N4 bias-field correction and brain masks (SimpleITK)."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from monai_iunet.brats import Modality
from monai_iunet.clinical.io import ClinicalInputError

__all__ = ["apply_mask", "n4_correct", "read_brain_mask", "resample_to_reference", "same_grid"]


def resample_to_reference(moving: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """``moving`` resampled (linear, 0 outside its field of view) onto ``reference``'s grid through ``transform``
    (which maps reference points to moving points, as :func:`register_rigid` returns it)."""
    return sitk.Resample(moving, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-3) -> bool:
    """Whether two images have the same size and, to ``tolerance`` (mm, direction cosines), spacing/origin/direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def _geometry(image: sitk.Image) -> str:
    spacing = ", ".join(f"{s:.3g}" for s in image.GetSpacing())
    origin = ", ".join(f"{s:.1f}" for s in image.GetOrigin())
    return f"size {image.GetSize()}, spacing ({spacing}) mm, origin ({origin})"


def read_brain_mask(path: str | os.PathLike, reference: sitk.Image, reference_name: str = Modality.T1CE) -> sitk.Image:
    """Read a brain mask that must lie on the reference series' grid; returns it as uint8 0/1.

    Raises:
        ClinicalInputError: unreadable, empty, or on another grid than the reference.
    """
    try:
        mask = sitk.ReadImage(str(path))
    except RuntimeError:
        raise ClinicalInputError(f"--brain-mask {path}: cannot be read as an image.") from None
    if mask.GetDimension() != 3 or not same_grid(mask, reference):
        geometry = _geometry(mask) if mask.GetDimension() == 3 else f"{mask.GetDimension()}D"
        raise ClinicalInputError(
            f"--brain-mask {path}: the mask is on another grid ({geometry})"
            f" than the reference --{reference_name} ({_geometry(reference)}); give a mask on the reference series' "
            "own grid (e.g. from a skull-stripping tool run on it)."
        )
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise ClinicalInputError(f"--brain-mask {path}: the mask is empty.")
    return mask


def apply_mask(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    """``image`` with zero outside ``mask`` (same grid)."""
    return sitk.Mask(image, mask, outsideValue=0.0)


def n4_correct(image: sitk.Image, mask: sitk.Image | None = None, shrink: int = 2, iterations: int = 25) -> sitk.Image:
    """N4 bias-field correction, fitted on a ``shrink``-times downsampled image and applied at full resolution.

    Args:
        image: the series (float32).
        mask: where to fit the field (default: the non-zero voxels of a skull-stripped image, else the Otsu
            foreground).
        shrink: downsampling factor for the fit.
        iterations: iterations per fitting level (4 levels).
    """
    if mask is None:  # skull-stripped: everything non-zero; otherwise the Otsu foreground
        skull_stripped = (sitk.GetArrayViewFromImage(image) == 0).mean() > 0.1
        mask = sitk.Cast(image > 0, sitk.sitkUInt8) if skull_stripped else sitk.OtsuThreshold(image, 0, 1, 200)
    small = sitk.Shrink(image, [shrink] * 3)
    small_mask = sitk.Shrink(mask, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([iterations] * 4)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
