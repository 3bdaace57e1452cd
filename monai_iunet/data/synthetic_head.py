"""Synthetic whole heads on the MNI152 anatomy: brain with a tumour, CSF, skull, scalp, eyes, face and neck.

The brain is the ICBM 2009a nonlinear symmetric MNI152 template that nilearn ships (grey- and white-matter
probability maps and brain mask, 1 mm; no download). Around it the head is built from distances to the
intracranial cavity, with thicknesses that vary smoothly:

- CSF around the brain (the cavity is the brain closed and dilated by ~2 mm);
- skull: inner table, fatty diploe (marrow), outer table (~7 mm in all);
- scalp: galea/muscle, subcutaneous fat, skin (~6 mm);
- eyes (vitreous) with orbital fat, a face (soft tissue, fat, sinuses with air) and a neck (muscle, fat, a vertebral
  column with marrow, spinal canal with cord).

Each tissue has its own contrast on FLAIR, T1, T1ce and T2 (:data:`HEAD_TISSUE_INTENSITIES`: fat bright on T1 and
T2, cortical bone dark everywhere, CSF and vitreous dark on T1/FLAIR and bright on T2); the brain tissues and the
tumour take the BraTS generator's intensities (:data:`~monai_iunet.data.synthetic_tissue.TISSUE_INTENSITIES`), so a
network trained on that generator sees the same contrasts. Then partial-volume blur, texture, a multiplicative bias
field per series and Rician noise (air is not zero). The truth keeps the brain mask and the tumour labels.

Arrays are in RAS+ voxel order (nibabel's canonical) with a 4×4 ``affine`` in mm; :func:`head_to_image` turns one
into a SimpleITK image (LPS).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from monai_iunet.data.synthetic_tissue import TISSUE_INTENSITIES, smooth_field
from monai_iunet.errors import needs_extra

__all__ = ["HEAD_TISSUE_INTENSITIES", "TISSUE_CODES", "head_to_image", "mni152_brain", "synthesize_head_case"]

HEAD_TISSUE_INTENSITIES: dict[str, tuple[float, float, float, float]] = {
    # tissue:       FLAIR  T1    T1ce  T2
    "fat": (0.70, 1.05, 1.05, 0.85),
    "soft_tissue": (0.35, 0.42, 0.48, 0.30),  # skin, muscle, galea
    "bone": (0.03, 0.03, 0.03, 0.03),
    "marrow": (0.55, 0.85, 0.87, 0.60),
    "vitreous": (0.10, 0.20, 0.20, 1.00),
    "cord": (0.50, 0.75, 0.75, 0.45),
}
"""Mean intensity of the tissues outside the brain per modality (``MODALITY_ORDER``: FLAIR, T1, T1ce, T2)."""

TISSUE_CODES: dict[str, int] = {
    "air": 0,
    "brain": 1,
    "csf": 2,
    "bone": 3,
    "marrow": 4,
    "soft_tissue": 5,
    "fat": 6,
    "vitreous": 7,
    "cord": 8,
}
"""Values of the ``tissue`` map of :func:`synthesize_head_case` (the dominant tissue of each voxel)."""

_PAD_MM = {"x": (12, 12), "y": (14, 22), "z": (75, 12)}  # room for the head around the MNI brain: (low, high) side


def _nilearn_data() -> Path:
    """nilearn's folder of templates; :class:`~monai_iunet.errors.MissingExtraError` naming ``anatomy`` without it."""
    with needs_extra("anatomy"):
        spec = importlib.util.find_spec("nilearn")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("No module named 'nilearn'", name="nilearn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def mni152_brain(resolution_mm: float = 1.0) -> dict[str, np.ndarray]:
    """The MNI152 2009a brain at ``resolution_mm``: ``{"gm", "wm"}`` probabilities in [0, 1], ``"brain"`` (bool,
    the template's brain mask) and ``"affine"`` (RAS, mm), padded to leave room for the head."""
    import nibabel as nib

    folder = _nilearn_data()
    images = {k: nib.load(folder / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz") for k in ("t1", "gm", "wm")}
    affine = images["t1"].affine.copy()
    pads = [tuple(int(round(p)) for p in _PAD_MM[a]) for a in "xyz"]
    out = {}
    for key, image in images.items():
        array = np.pad(np.asarray(image.dataobj, dtype=np.float32), pads)
        if resolution_mm != 1.0:
            array = ndimage.zoom(array, 1.0 / resolution_mm, order=1)
        out[key] = array
    affine[:3, 3] -= [p[0] for p in pads]
    affine[:3, :3] *= resolution_mm
    brain = ndimage.binary_fill_holes(out.pop("t1") > 5.0)  # the template is 0 outside the brain, up to 255
    scale = 255.0 if out["gm"].max() > 1.5 else 1.0
    return {"gm": out["gm"] / scale, "wm": out["wm"] / scale, "brain": brain, "affine": affine}


def _ball(radius_vox: float) -> np.ndarray:
    r = int(np.ceil(radius_vox))
    g = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (g**2).sum(0) <= radius_vox**2


def _ellipsoid(mm: np.ndarray, centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    c, r = np.asarray(centre, np.float32), np.asarray(radii, np.float32)
    return (((mm - c[:, None, None, None]) / r[:, None, None, None]) ** 2).sum(0) < 1.0


def _tumour(brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, res: float, rng: np.random.Generator) -> np.ndarray:
    """BraTS 2018-2021 labels (1 necrosis, 2 oedema, 4 enhancing) of a perturbed blob deep in one hemisphere."""
    depth = ndimage.distance_transform_edt(brain) * res
    candidates = np.argwhere((depth > 28.0) & (wm > 0.6))
    centre = candidates[rng.integers(len(candidates))].astype(np.float32)
    radius = rng.uniform(11.0, 19.0) / res
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in brain.shape), indexing="ij"))
    d = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0)) / radius
    d = d + 0.18 * smooth_field(brain.shape, rng, cells=max(2, int(brain.shape[0] * res / 25)))
    core, rim, edema = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.45), rng.uniform(1.5, 2.0)
    label = np.zeros(brain.shape, np.uint8)
    label[brain & (d < edema) & (gm + wm > 0.5)] = 2  # oedema spreads in tissue, not into the ventricles
    label[brain & (d < core + rim)] = 4
    label[brain & (d < core)] = 1
    return label


def _head_tissues(anatomy: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Masks of the tissues outside the brain (and the intracranial CSF), from distances to the cavity."""
    brain, res, affine = anatomy["brain"], float(anatomy["affine"][0, 0]), anatomy["affine"]
    shape = brain.shape
    cavity = ndimage.binary_closing(brain, _ball(6.0 / res), border_value=0)
    cavity = ndimage.binary_fill_holes(ndimage.binary_dilation(cavity, _ball(2.0 / res)))
    d = ndimage.distance_transform_edt(~cavity) * res  # mm outside the cavity
    d = d + 1.0 * smooth_field(shape, rng, cells=4)  # thicknesses vary
    mm = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij"))
    mm = np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), mm) + affine[:3, 3, None, None, None]
    x, y, z = mm
    neck = (((x / 52.0) ** 2 + ((y + 22.0) / 50.0) ** 2) < 1.0) & (z < -30.0)
    face = _ellipsoid(mm, (0, 40, -52), (58, 48, 40)) & (y > -15)
    head = (d < 13.0) | neck | face
    inside = ndimage.distance_transform_edt(head) * res  # mm inside the head's outline
    t = {
        "csf": cavity & ~brain,
        "bone": (d > 0) & (d < 7.0),
        "marrow": (d > 2.0) & (d < 5.0),
        "soft_tissue": head & (d >= 7.0),
    }
    t["fat"] = head & (d >= 8.5) & (inside > 1.5) & ((inside < 5.0) | (d < 12.0))
    t["soft_tissue"] &= ~t["fat"]
    # neck: vertebral body (bone with marrow), spinal canal (CSF) around the cord
    canal = np.hypot(x, y + 40.0)
    body = np.hypot(x, y + 15.0)
    below = z < -58.0
    t["bone"] |= below & (((canal >= 7.0) & (canal < 11.0)) | (body < 12.0)) & ~cavity
    t["marrow"] |= below & (body < 9.5) & ~cavity
    t["cord"] = below & (canal < 4.5) & ~cavity
    t["csf"] |= below & (canal >= 4.5) & (canal < 7.0) & ~cavity
    # eyes in orbital fat, sinuses (air) in the face, everything outside the cavity
    eyes = np.zeros(shape, bool)
    for side in (-1.0, 1.0):
        eyes |= _ellipsoid(mm, (side * 32.0, 56.0, -36.0), (12.0, 12.0, 12.0))
        t["fat"] |= _ellipsoid(mm, (side * 30.0, 44.0, -36.0), (17.0, 22.0, 15.0)) & (d > 3.0) & head
        t["air"] = t.get("air", np.zeros(shape, bool)) | _ellipsoid(mm, (side * 24.0, 52.0, -62.0), (11.0, 14.0, 13.0))
    t["air"] |= _ellipsoid(mm, (0.0, 62.0, -52.0), (6.0, 14.0, 16.0))
    t["vitreous"] = eyes & (d > 3.0)
    for key in t:
        if key != "csf":
            t[key] &= ~cavity
    t["head"] = (head | cavity) & ~(t["air"] & ~cavity)
    return t


def synthesize_head_case(
    resolution_mm: float = 1.5,
    seed: int | np.random.Generator | None = None,
    noise_std: float = 0.02,
    bias_strength: float = 0.2,
) -> dict[str, np.ndarray]:
    """Draw one synthetic whole-head case (FLAIR, T1, T1ce, T2) with a brain tumour.

    Args:
        resolution_mm: voxel size of the isotropic grid (1 mm gives about 220 × 270 × 275 voxels).
        seed: seed or random generator; the same seed gives the same case.
        noise_std: Rician noise standard deviation, relative to white matter on T1.
        bias_strength: standard deviation of the log of each series' multiplicative bias field.

    Returns:
        ``{"image": (4, X, Y, Z) float32 in MODALITY_ORDER, "label": (X, Y, Z) uint8 with BraTS 2018-2021 labels,
        "brain_mask": (X, Y, Z) uint8 (the brain with the tumour, the truth of a brain extraction), "tissue":
        (X, Y, Z) uint8 (:data:`TISSUE_CODES`), "affine": 4×4 RAS mm}``; arrays in RAS+ voxel order.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    anatomy = mni152_brain(resolution_mm)
    brain, gm, wm = anatomy["brain"], anatomy["gm"], anatomy["wm"]
    label = _tumour(brain, gm, wm, resolution_mm, rng)
    tissues = _head_tissues(anatomy, rng)
    shape = brain.shape
    brats = {k: np.asarray(v, np.float32) for k, v in TISSUE_INTENSITIES.items()}
    head = {k: np.asarray(v, np.float32) for k, v in HEAD_TISSUE_INTENSITIES.items()}
    pg, pw = np.clip(gm, 0, 1), np.clip(wm, 0, 1)
    pc = np.clip(1.0 - pg - pw, 0, 1)
    image = np.zeros((4, *shape), np.float32)
    tissue = np.zeros(shape, np.uint8)
    for key in ("soft_tissue", "fat", "bone", "marrow", "cord", "vitreous", "csf"):
        tissue[tissues[key]] = TISSUE_CODES[key]
    tissue[brain] = TISSUE_CODES["brain"]
    tissue[~tissues["head"]] = TISSUE_CODES["air"]
    for c in range(4):
        value = np.zeros(shape, np.float32)
        for key in ("soft_tissue", "fat", "bone", "marrow", "cord", "vitreous"):
            value[tissues[key]] = head[key][c]
        value[tissues["csf"]] = brats["csf"][c]
        value[brain] = (pg * brats["grey_matter"][c] + pw * brats["white_matter"][c] + pc * brats["csf"][c])[brain]
        for part, key in ((2, "edema"), (4, "enhancing"), (1, "necrosis")):
            value[label == part] = brats[key][c]
        value[~tissues["head"]] = 0.0
        image[c] = value
    image = ndimage.gaussian_filter(image, sigma=(0, *(0.5 / resolution_mm,) * 3))
    texture = 1.0 + 0.04 * smooth_field(shape, rng, cells=max(4, int(shape[0] * resolution_mm / 4)))
    for channel in image:
        channel *= texture * np.exp(bias_strength * smooth_field(shape, rng, cells=2))
        real = channel + noise_std * rng.standard_normal(shape).astype(np.float32)
        channel[...] = np.hypot(real, noise_std * rng.standard_normal(shape).astype(np.float32))
        channel *= rng.uniform(500.0, 1200.0)
    mask = ndimage.binary_fill_holes(brain | (label > 0))
    return {
        "image": image,
        "label": label,
        "brain_mask": mask.astype(np.uint8),
        "tissue": tissue,
        "affine": anatomy["affine"],
    }


def head_to_image(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A RAS+ array ``(X, Y, Z)`` with its RAS ``affine`` (axis-aligned) as a SimpleITK image (LPS physical space)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    direction = ras_to_lps @ affine[:3, :3]
    spacing = np.linalg.norm(direction, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((direction / spacing).flatten().tolist())
    image.SetOrigin((ras_to_lps @ affine[:3, 3]).tolist())
    return image
