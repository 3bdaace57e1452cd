"""Brain extraction for whole-head series: decide whether it is needed, run deepbet, fill and check the mask.

A BraTS network has only seen skull-stripped brains; scanner series show the whole head. With ``--skull-strip auto``
(the default) the pipeline looks at the reference series: BraTS-style skull-stripped volumes have their background
set to exactly zero (most voxels) and a foreground of brain size, while a scanner's whole-head series has noise in
the air around the head. When extraction is needed, `deepbet <https://github.com/wwu-mmll/deepbet>`_ (Fisch et al.
2024, MIT; its wheel ships the trained weights, so it runs offline) extracts the brain from the T1-weighted series
(it was trained on T1w), on the reference grid. The mask is then filled (holes and pits closed: tumour and oedema
must stay inside, a mask that cuts the tumour is worse than none) and, after inference, checked against the
predicted whole tumour (:func:`tumour_outside_mask`).

Example::

    decision = decide_skull_strip(reference_image, "auto")
    if decision.extract:
        mask = fill_brain_mask(deepbet_brain_mask(t1_on_reference_grid))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from monai.utils import StrEnum, look_up_option
from scipy import ndimage

from monai_iunet.clinical.io import ClinicalInputError

__all__ = [
    "SkullStrip",
    "SkullStripDecision",
    "decide_skull_strip",
    "deepbet_brain_mask",
    "fill_brain_mask",
    "looks_skull_stripped",
    "require_deepbet",
    "tumour_outside_mask",
]

DEEPBET_INSTALL = "pip install --no-deps deepbet==1.0.2 fill_voids connected-components-3d fastremap"
"""How to install deepbet without its GUI dependencies (as ``scripts/install.sh`` does)."""


class SkullStrip(StrEnum):
    """``--skull-strip``: ``auto`` (extract when the reference is not already skull-stripped), ``deepbet``
    (always extract), ``none`` (never)."""

    AUTO = "auto"
    DEEPBET = "deepbet"
    NONE = "none"


@dataclass(frozen=True)
class SkullStripDecision:
    """What was decided, and why (written into the report).

    Attributes:
        extract: whether the brain is extracted.
        method: the extractor (``"deepbet"``) or ``"none"``.
        reason: why, in words.
    """

    extract: bool
    method: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def looks_skull_stripped(image: sitk.Image, min_zero_fraction: float = 0.3, max_brain_ml: float = 2500.0):
    """Whether a series looks skull-stripped: at least ``min_zero_fraction`` of its voxels are exactly 0 and the
    non-zero part is no larger than a brain (``max_brain_ml``). A whole-head scan has noise in the air.

    Returns:
        ``(stripped, reason)``.
    """
    array = sitk.GetArrayViewFromImage(image)
    zero = float((array == 0).mean())
    foreground_ml = float((array != 0).sum()) * float(np.prod(image.GetSpacing())) / 1000.0
    if zero < min_zero_fraction:
        return False, f"only {zero:.0%} of the voxels are 0 (air around a head has noise): a whole-head series"
    if foreground_ml > max_brain_ml:
        return False, f"{zero:.0%} of the voxels are 0 but the rest is {foreground_ml:.0f} mL, more than a brain"
    return True, f"{zero:.0%} of the voxels are 0 and the rest is {foreground_ml:.0f} mL: already skull-stripped"


def require_deepbet() -> None:
    """Raise a :class:`ClinicalInputError` that says how to install deepbet when it is not installed."""
    try:
        import deepbet  # noqa: F401
    except ImportError as e:
        raise ClinicalInputError(
            f"--skull-strip: brain extraction needs deepbet, which cannot be imported ({e}). Install it with "
            f"'{DEEPBET_INSTALL}' (scripts/install.sh does), or pass --skull-strip none with skull-stripped series "
            "or --brain-mask."
        ) from None


def decide_skull_strip(reference: sitk.Image, method: str | SkullStrip, brain_mask_given: bool = False):
    """Decide whether to extract the brain.

    Args:
        reference: the reference series (as read).
        method: ``"auto"``, ``"deepbet"`` or ``"none"``.
        brain_mask_given: the user gave ``--brain-mask`` (then nothing is extracted).

    Returns:
        a :class:`SkullStripDecision`; when it extracts, deepbet is importable (checked here, before the minutes of
        registration).
    """
    method = SkullStrip(look_up_option(str(method), [m.value for m in SkullStrip]))
    if brain_mask_given:
        return SkullStripDecision(False, "none", "a brain mask was given (--brain-mask)")
    if method == SkullStrip.NONE:
        return SkullStripDecision(False, "none", "--skull-strip none: the series are taken as skull-stripped")
    if method == SkullStrip.DEEPBET:
        require_deepbet()
        return SkullStripDecision(True, "deepbet", "--skull-strip deepbet")
    stripped, why = looks_skull_stripped(reference)
    if stripped:
        return SkullStripDecision(False, "none", f"auto: the reference {why}")
    require_deepbet()
    return SkullStripDecision(True, "deepbet", f"auto: the reference shows {why}")


_EXTRACTOR = None


def _extractor():
    global _EXTRACTOR
    if _EXTRACTOR is None:
        require_deepbet()
        from deepbet import BrainExtraction

        _EXTRACTOR = BrainExtraction(no_gpu=True)
    return _EXTRACTOR


def deepbet_brain_mask(t1: sitk.Image, threshold: float = 0.5) -> sitk.Image:
    """deepbet's brain mask of a T1-weighted image, on the image's own grid.

    deepbet reads arrays in RAS+ orientation (nibabel's closest canonical); the image is reoriented to it and the
    mask back, voxel for voxel (a permutation and flips, no interpolation).

    Args:
        t1: a T1-weighted 3D image, whole head.
        threshold: probability threshold of deepbet's network.

    Returns:
        a uint8 mask (1 brain) with ``t1``'s geometry.
    """
    bet = _extractor()
    oriented = sitk.DICOMOrient(sitk.Cast(t1, sitk.sitkFloat32), "RAS")
    x = np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(oriented), (2, 1, 0)))  # (R, A, S)
    probability = bet.run_model(x.copy())
    mask = bet.postprocess(probability > threshold)
    out = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(mask, (2, 1, 0))).astype(np.uint8))
    out.CopyInformation(oriented)
    return sitk.Resample(out, t1, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def fill_brain_mask(mask: sitk.Image, closing_mm: float = 4.0) -> sitk.Image:
    """Fill a brain mask: keep the largest component, close pits up to ``closing_mm`` and fill holes (3D, then per
    axial slice), so that a dark tumour or a resection cavity at the surface stays inside."""
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    mask = sitk.Cast(components == 1, sitk.sitkUInt8)
    radius = [max(1, int(round(closing_mm / s))) for s in mask.GetSpacing()]
    padded = sitk.ConstantPad(mask, radius, radius, 0)
    closed = sitk.BinaryMorphologicalClosing(padded, radius, sitk.sitkBall)
    closed = sitk.Crop(closed, radius, radius)
    filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(closed)) > 0  # (z, y, x)
    for k in range(filled.shape[0]):  # and per slice: a cavity open at the top or bottom of the volume
        filled[k] = ndimage.binary_fill_holes(filled[k])
    out = sitk.GetImageFromArray(filled.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def tumour_outside_mask(mask: sitk.Image, whole_tumour: np.ndarray) -> float:
    """The fraction of the predicted whole tumour (array ``(z, y, x)`` on the mask's grid) outside the brain mask."""
    wt = np.asarray(whole_tumour, dtype=bool)
    if not wt.any():
        return 0.0
    inside = sitk.GetArrayViewFromImage(mask) > 0
    return float((wt & ~inside).sum()) / float(wt.sum())
