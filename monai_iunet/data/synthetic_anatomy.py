"""Realistic synthetic BraTS cases built on a real brain: nilearn's MNI152 (ICBM 2009a) templates.

The ellipsoid brains of :func:`~monai_iunet.data.synthesize_brats_case` are easy to segment: the tumour is the only
structure of its contrast. Here every case starts from the anatomy of the MNI152 template that ships inside the
``nilearn`` wheel (``load_mni152_template``, ``load_mni152_gm_template``, ``load_mni152_wm_template``,
``load_mni152_brain_mask``: 1 mm, skull-stripped, no download), so the tumour sits among cortex, white matter,
ventricles, basal ganglia and cerebellum, whose contrasts overlap with the tumour's on every single modality:

1. **Per-case anatomy**: a random affine (rotation up to ~8°, scaling 0.9–1.08 per axis, shift) and a smooth
   random elastic displacement (a few mm) of the template, so that no two brains are the same.
2. **Tumour and mass effect**: an irregular glioma (random ellipsoid radii 10–28 mm, noisy outline) in the
   cerebral white matter, with a necrotic / non-enhancing core (label 1), an enhancing rim of irregular thickness
   (label 4), and vasogenic edema (label 2) that spreads along white matter and spares the cortex. The tumour
   displaces the surrounding tissue (a smooth radial push that compresses ventricles and sulci), instead of being
   painted over it.
3. **Contrasts** per modality (FLAIR, T1, T1ce, T2): tissue means of
   :data:`~monai_iunet.data.synthetic_tissue.TISSUE_INTENSITIES` mixed by the grey/white/CSF partial volumes; T1 and
   T1ce also take the template's own T1 detail (deep grey nuclei, cerebellum).
4. **Acquisition**: a smooth multiplicative bias field per modality, Rician noise, a global intensity scale; zero
   outside the (deformed) brain mask, as in skull-stripped BraTS data.

The grid is BraTS's: 240 × 240 × 155 voxels of 1 mm by default; a smaller ``spatial_size`` keeps the same 240 ×
240 × 155 mm field of view at a coarser spacing (e.g. 120 × 120 × 78 ≈ 2 mm), sampled directly from the 1 mm
templates.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import GaussianSmooth
from monai.utils import ensure_tuple_rep

from monai_iunet.brats import BRATS2021, MODALITY_ORDER, Modality, TumourPart
from monai_iunet.data.synthetic_tissue import TISSUE_INTENSITIES, smooth_field
from monai_iunet.errors import UserInputError

__all__ = ["BRATS_FIELD_OF_VIEW", "load_mni152", "mni152_spacing", "synthesize_mni152_case"]

BRATS_FIELD_OF_VIEW = (240.0, 240.0, 155.0)
"""Field of view of a BraTS case in mm (240 × 240 × 155 voxels of 1 mm)."""


@functools.lru_cache(maxsize=1)
def load_mni152() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The MNI152 templates that ship with nilearn (no download), stacked, with their affine and brain centre.

    Returns:
        ``(templates, affine, centre)``: ``templates`` of shape ``(1, 4, 197, 233, 189)``, float32, channels T1,
        grey matter, white matter and brain mask in [0, 1]; the 4 × 4 voxel-to-world affine (mm, RAS); and the
        world coordinates of the centre of the brain mask's bounding box.
    """
    try:
        from nilearn import datasets
    except ImportError as e:  # pragma: no cover - nilearn is an install requirement
        raise ImportError("anatomy='mni152' needs nilearn: pip install nilearn") from e
    loaders = (
        datasets.load_mni152_template,
        datasets.load_mni152_gm_template,
        datasets.load_mni152_wm_template,
        datasets.load_mni152_brain_mask,
    )
    images = [load(resolution=1) for load in loaders]
    volumes = np.stack([np.asarray(img.get_fdata(), dtype=np.float32) for img in images])
    affine = np.asarray(images[0].affine, dtype=np.float64)
    voxels = np.argwhere(volumes[3] > 0.5)
    centre_voxel = (voxels.min(0) + voxels.max(0)) / 2
    centre = affine[:3, :3] @ centre_voxel + affine[:3, 3]
    return torch.from_numpy(volumes)[None], affine, centre


def mni152_spacing(spatial_size: Sequence[int] | int) -> tuple[float, float, float]:
    """The voxel size in mm that gives ``spatial_size`` voxels the BraTS field of view (1 mm at 240 × 240 × 155)."""
    shape = ensure_tuple_rep(spatial_size, 3)
    return tuple(float(fov / s) for fov, s in zip(BRATS_FIELD_OF_VIEW, shape))


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    rot = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    return rot


def _world_grid(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """World coordinates (mm) of every voxel, ``(3, *shape)``, with the affine of ``generate_synthetic_brats``
    (first two axes flipped, centred on the origin)."""
    axes = [(np.arange(n, dtype=np.float32) - n / 2) * sp for n, sp in zip(shape, spacing)]
    axes[0], axes[1] = -axes[0], -axes[1]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _sample(templates: torch.Tensor, affine: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear samples of ``templates`` at world coordinates ``coords`` ``(3, *shape)`` → ``(C, *shape)``."""
    inv = np.linalg.inv(affine)
    vox = np.einsum("ij,j...->i...", inv[:3, :3], coords) + inv[:3, 3, None, None, None]
    sizes = templates.shape[2:]
    norm = [2.0 * vox[a] / (sizes[a] - 1) - 1.0 for a in range(3)]
    grid = torch.from_numpy(np.stack(norm[::-1], axis=-1).astype(np.float32))[None]  # (1, *shape, 3) as (W, H, D)
    return F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].numpy()


def _draw_warp(rng: np.random.Generator, shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This case's random anatomy: a linear map (rotation, scaling), a shift (mm) and an elastic field (mm)."""
    linear = _rotation(rng, 8.0) @ np.diag(rng.uniform(0.9, 1.08, 3))
    shift = rng.uniform(-4.0, 4.0, 3)
    cells = max(2, int(max(shape) * max(spacing) / 40))  # displacement correlated over ~4 cm
    elastic = np.stack([rng.uniform(1.5, 3.5) * smooth_field(shape, rng, cells=cells) for _ in range(3)])
    return linear, shift, elastic


def _apply_warp(points: np.ndarray, centre: np.ndarray, warp) -> np.ndarray:
    """Template world coordinates (mm) of case coordinates ``points`` ``(3, *shape)``."""
    linear, shift, elastic = warp
    moved = np.einsum("ij,j...->i...", linear, points) + elastic
    return moved + (centre + shift)[:, None, None, None]


def _tumour(world: np.ndarray, coarse: np.ndarray, wm: np.ndarray, rng: np.random.Generator):
    """A tumour in the white matter ``wm`` (at the case coordinates ``coarse``): its push and its distance map.

    Returns:
        ``(displaced, d)``: the case coordinates that the tissue at each voxel came from, ``(3, *shape)``, and the
        noisy ellipsoidal distance to the tumour centre in units of its radii (``d < 1``: tumour).
    """
    shape = world.shape[1:]
    candidates = np.argwhere(wm > 0.85)
    if len(candidates) == 0:
        candidates = np.argwhere(wm >= wm.max())
    centre = coarse[(slice(None), *candidates[rng.integers(len(candidates))])].astype(np.float32)
    radii = rng.uniform(10.0, 26.0) * rng.uniform(0.8, 1.2, 3)
    offset = world - centre[:, None, None, None]
    r = np.sqrt((offset**2).sum(0))
    # mass effect: the tissue seen at radius r came from radius r·h(r) < r; monotone since strength < 1
    strength, reach = rng.uniform(0.35, 0.6), 1.3 * float(radii.mean())
    h = 1.0 - strength * np.exp(-(r**2) / (2 * reach**2))
    displaced = centre[:, None, None, None] + offset * h
    d = np.sqrt(((offset / radii[:, None, None, None]) ** 2).sum(0))
    d = d * (1.0 + 0.2 * smooth_field(shape, rng, cells=6))
    return displaced.astype(np.float32), d.astype(np.float32)


def _labels(d, wm, gm, brain, rng: np.random.Generator, shape) -> np.ndarray:
    """BraTS labels from the tumour distance map: necrosis 1, enhancing rim 4, edema 2 along white matter."""
    core = rng.uniform(0.35, 0.65)
    rim = core + rng.uniform(0.15, 0.35) * (1.0 + 0.5 * smooth_field(shape, rng, cells=8))
    reach = rng.uniform(1.6, 2.6) * (1.0 + 0.25 * smooth_field(shape, rng, cells=10))
    white = wm / np.maximum(wm + gm, 1e-3)  # white-matter fraction of the tissue at each voxel
    edema = (d < 1.0 + 0.25 * rng.uniform(0.5, 1.0)) | ((d < reach) & (white > 0.55))
    label = np.zeros(shape, dtype=np.uint8)
    label[brain & edema] = BRATS2021.edema
    label[brain & (d < 1.0)] = BRATS2021.enhancing
    label[brain & (d < np.minimum(rim, 0.95))] = BRATS2021.necrosis
    label[brain & (d < core)] = BRATS2021.necrosis
    # enhancing voxels are the rim between the core and the tumour edge
    label[brain & (d >= np.minimum(rim, 0.95)) & (d < 1.0)] = BRATS2021.enhancing
    return label


def _contrasts(t1, gm, wm, brain, label, rng: np.random.Generator, shape) -> np.ndarray:
    """The four modalities (FLAIR, T1, T1ce, T2), before bias field and noise, ``(4, *shape)``."""
    means = {k: np.asarray(v, dtype=np.float32)[:, None, None, None] for k, v in TISSUE_INTENSITIES.items()}
    # sharpen the population-average partial volumes a little, as in one subject's scan
    gm2, wm2 = gm**1.5, wm**1.5
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) ** 1.5
    total = np.maximum(gm2 + wm2 + csf, 1e-3)
    healthy = (csf * means["csf"] + gm2 * means["grey_matter"] + wm2 * means["white_matter"]) / total
    # T1 and T1ce borrow the template's own T1 detail (deep grey nuclei, cerebellum), scaled to the tissue model
    template_t1 = t1 / max(float(np.percentile(t1[wm > 0.9], 50)) if (wm > 0.9).any() else 1.0, 1e-3)
    for c in (MODALITY_ORDER.index(Modality.T1), MODALITY_ORDER.index(Modality.T1CE)):
        healthy[c] = 0.5 * healthy[c] + 0.5 * template_t1 * means["white_matter"][c, 0, 0, 0]
    smooth = GaussianSmooth(sigma=0.7)
    image = healthy
    texture = 1.0 + 0.12 * smooth_field(shape, rng, cells=max(4, max(shape) // 6))
    for name in (TumourPart.EDEMA, TumourPart.ENHANCING, TumourPart.NECROSIS):
        part = smooth(torch.from_numpy((label == BRATS2021.value(name)).astype(np.float32))[None]).numpy()
        mean = means[name] * (texture if name != TumourPart.EDEMA else 1.0)
        image = image * (1.0 - part) + part * mean
    # a soft transition of the edema into the surrounding tissue
    image = image * (1.0 + 0.03 * smooth_field(shape, rng, cells=max(4, max(shape) // 3)))
    return (image * brain).astype(np.float32)


def synthesize_mni152_case(
    spatial_size: Sequence[int] | int = (240, 240, 155),
    seed: int | np.random.Generator | None = None,
    noise_std: float = 0.03,
    bias_strength: float = 0.18,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one realistic synthetic BraTS case on the MNI152 anatomy (see the module docstring).

    Args:
        spatial_size: grid shape; the field of view is always BraTS's 240 × 240 × 155 mm, so the voxel size is
            :func:`mni152_spacing` of it (1 mm by default; ``(120, 120, 78)`` gives ~2 mm; at least 16 voxels).
        seed: seed or random generator; the same seed gives the same case.
        noise_std: standard deviation of the noise, relative to the white-matter intensity on T1.
        bias_strength: standard deviation of the log of the multiplicative bias field.

    Returns:
        ``(image, label)`` as :func:`~monai_iunet.data.synthesize_brats_case`: ``image`` ``(4, *spatial_size)``
        float32 (FLAIR, T1, T1ce, T2), zero outside the brain; ``label`` ``spatial_size`` uint8 with 1 necrotic /
        non-enhancing core, 2 edema, 4 enhancing tumour.
    """
    shape = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    if len(shape) != 3 or min(shape) < 16:
        raise UserInputError(f"spatial_size must be three sizes of at least 16 voxels, got {spatial_size}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    spacing = mni152_spacing(shape)
    templates, affine, centre = load_mni152()
    world = _world_grid(shape, spacing)

    # where each voxel of this case comes from in the template: the tumour's push, then this case's warp
    warp = _draw_warp(rng, shape, spacing)
    step = max(1, min(shape) // 24)  # where the white matter is, on a coarse grid: enough to place the tumour
    coarse = world[:, ::step, ::step, ::step]
    elastic = warp[2][:, ::step, ::step, ::step]
    wm_before = _sample(templates[:, 2:3], affine, _apply_warp(coarse, centre, (*warp[:2], elastic)))[0]
    displaced, d = _tumour(world, coarse, wm_before, rng)
    t1, gm, wm, mask = _sample(templates, affine, _apply_warp(displaced, centre, warp))
    brain = mask > 0.5
    label = _labels(d, wm, gm, brain, rng, shape)
    image = _contrasts(t1, gm, wm, brain, label, rng, shape)
    for channel in image:
        channel *= np.exp(bias_strength * smooth_field(shape, rng, cells=2))
        noise = noise_std * rng.standard_normal((2, *shape)).astype(np.float32)
        channel[:] = np.sqrt((channel + noise[0]) ** 2 + noise[1] ** 2)  # Rician magnitude noise
        channel *= rng.uniform(300.0, 1500.0)
    return (image * brain).astype(np.float32), label
