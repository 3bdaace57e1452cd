"""Simulated parallel-beam CT: undersampled projections with Poisson noise, reconstructed by filtered backprojection.

This reproduces the degradation of the iUNet paper's post-processing experiment (Etmann et al. 2020, §4.1): a
strongly undersampled parallel-beam scan with Poisson noise, reconstructed with FBP, whose rotation axis is a
diagonal of the volume perturbed by angular noise, so that the streaks do not line up with the voxel grid.

How it is computed, and with which library:

1. The volume is padded to a cube and resampled (MONAI ``Affine``, cubic B-spline) onto a bigger cube whose last
   axis is the CT rotation axis; its side (``sqrt(3)`` times the cube's, plus a margin) holds the whole volume inside
   the inscribed circle of every slice, so no part of the object leaves the field of view.
2. Every slice perpendicular to the rotation axis is a 2D parallel-beam problem: its sinogram is computed with
   scikit-image's ``radon``; Beer-Lambert transmission counts are drawn from a Poisson distribution (numpy) and
   turned back into line integrals; each noisy sinogram is reconstructed with scikit-image's ``iradon``
   (ramp-filtered backprojection).
3. The reconstruction is resampled back onto the original grid by inverting step 1 (MONAI's invertible transforms).

scikit-image was chosen because it is a pip-installable, CPU-only, well-tested implementation of the Radon transform
and FBP; for parallel beams a 3D scan is exactly a stack of independent 2D scans, so slice-wise 2D is not an
approximation. The GPU tomography toolboxes (ASTRA, tomosipo, ODL's ASTRA backend) are not pip-installable with CPU
3D support on the machines this project targets. The two resamplings between the grids add a slight interpolation
blur to the FBP, comparable to a detector's finite pixel size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Affine, Compose, SpatialPad
from monai.transforms.utils import create_rotate
from monai.utils import optional_import

iradon, _has_skimage = optional_import("skimage.transform", name="iradon")
radon, _ = optional_import("skimage.transform", name="radon")

__all__ = ["rotation_to_axis", "sample_ct_axis", "radon_slices", "fbp_slices", "poisson_sinograms", "simulate_fbp"]


def rotation_to_axis(axis: Sequence[float]) -> np.ndarray:
    """The rotation matrix ``R`` (3 x 3) that maps the last coordinate axis ``e_z`` onto the unit vector of ``axis``.

    It is the rotation about ``e_z x axis`` (the smallest one), ``Rz(phi) Ry(theta) Rz(-phi)`` for the axis' polar
    angle ``theta`` and azimuth ``phi`` (MONAI's ``create_rotate``), the identity for ``axis = e_z``.
    """
    a = np.asarray(axis, dtype=np.float64)
    norm = np.linalg.norm(a)
    if a.shape != (3,) or norm == 0:
        raise ValueError(f"axis must be a non-zero 3-vector, got {axis}.")
    a = a / norm
    theta, phi = float(np.arccos(np.clip(a[2], -1.0, 1.0))), float(np.arctan2(a[1], a[0]))
    # intrinsic x, y, z angles: Rx(0) Ry(0) Rz(phi) @ Rx(0) Ry(theta) Rz(-phi)
    return create_rotate(3, (0.0, 0.0, phi))[:3, :3] @ create_rotate(3, (0.0, theta, -phi))[:3, :3]


def sample_ct_axis(
    rng: np.random.Generator, base: Sequence[float] = (1.0, 1.0, 1.0), angle_std_deg: float = 5.0
) -> np.ndarray:
    """A unit rotation axis: ``base`` (default the volume's main diagonal) tilted by a random angle.

    The tilt angle is drawn from a half-normal distribution with scale ``angle_std_deg``, about a direction
    perpendicular to ``base`` drawn uniformly, as the paper's "diagonal axis perturbed by angular noise".
    """
    base_r = rotation_to_axis(base)
    tilt = np.deg2rad(abs(rng.normal(0.0, angle_std_deg)))
    phi = rng.uniform(0.0, 2.0 * np.pi)
    local = np.array([np.sin(tilt) * np.cos(phi), np.sin(tilt) * np.sin(phi), np.cos(tilt)])
    return base_r @ local


def radon_slices(volume: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Parallel-beam sinograms of every slice ``volume[..., k]`` (rotation about the last axis).

    Args:
        volume: array of shape ``(m, m, K)``, zero outside the inscribed circle of each slice.
        theta: projection angles in degrees.

    Returns:
        array of shape ``(m, len(theta), K)``: line integrals in units of voxels times density.
    """
    if not _has_skimage:
        raise ImportError("the CT simulation needs scikit-image: pip install 'monai-iunet[ct]'.")
    return np.stack([radon(volume[..., k], theta=theta, circle=True) for k in range(volume.shape[-1])], axis=-1)


def fbp_slices(sinograms: np.ndarray, theta: np.ndarray, filter_name: str = "ramp") -> np.ndarray:
    """Filtered backprojection of every sinogram ``sinograms[..., k]``; the inverse layout of :func:`radon_slices`.

    Returns:
        array of shape ``(m, m, K)``.
    """
    if not _has_skimage:
        raise ImportError("the CT simulation needs scikit-image: pip install 'monai-iunet[ct]'.")
    return np.stack(
        [
            iradon(sinograms[..., k], theta=theta, filter_name=filter_name, circle=True)
            for k in range(sinograms.shape[-1])
        ],
        axis=-1,
    )


def poisson_sinograms(
    sinograms: np.ndarray, photons: float, attenuation: float, voxels_per_side: int, rng: np.random.Generator
) -> np.ndarray:
    """Poisson noise on the transmission counts (Beer-Lambert law), returned as noisy line integrals.

    A ray sees ``photons * exp(-attenuation * p / voxels_per_side)`` photons on average, ``p`` being its line integral
    in voxels times density; so ``attenuation`` is the absorbance of a ray crossing the whole side of the volume
    through material of density 1. Zero counts are clipped to one photon.

    Args:
        sinograms: noise-free line integrals (voxels times density).
        photons: incident photons per detector pixel and projection; fewer photons, more noise.
        attenuation: absorbance of a full side of material of density 1.
        voxels_per_side: number of voxels along a side of the volume, the length unit of ``attenuation``.
        rng: numpy random generator.

    Returns:
        noisy line integrals, same shape and unit as ``sinograms``.
    """
    scale = attenuation / voxels_per_side
    counts = rng.poisson(photons * np.exp(-scale * np.clip(sinograms, 0.0, None)))
    return -np.log(np.maximum(counts, 1) / photons) / scale


def simulate_fbp(
    volume: np.ndarray,
    num_angles: int = 16,
    photons: float | None = 1000.0,
    attenuation: float = 2.0,
    axis: Sequence[float] | None = None,
    axis_angle_std_deg: float = 5.0,
    filter_name: str = "ramp",
    spline_order: int = 3,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """FBP reconstruction of an undersampled, noisy parallel-beam scan of ``volume``, on the grid of ``volume``.

    Args:
        volume: attenuation map, array of shape ``(X, Y, Z)``.
        num_angles: number of projections, equally spaced over 180 degrees with a random offset. A ``64^3``
            volume needs about 100 for a full scan; the default 16 is strongly undersampled.
        photons: incident photons per detector pixel and projection; ``None`` for noise-free projections.
        attenuation: absorbance of a ray crossing a whole side of material of density 1 (see
            :func:`poisson_sinograms`); only matters for the noise.
        axis: the rotation axis in the volume's coordinates; ``None`` draws it with :func:`sample_ct_axis`.
        axis_angle_std_deg: scale of the random tilt of the drawn axis away from the volume's diagonal.
        filter_name: FBP filter, one of scikit-image's ``iradon`` filters (``"ramp"``, ``"shepp-logan"``, ...).
        spline_order: interpolation order of the two resamplings between the volume's grid and the CT grid
            (3: cubic B-spline, sharper than trilinear; 1: trilinear).
        seed: seed or numpy generator for the axis, the angle offset and the noise.

    Returns:
        float32 array of the shape of ``volume``.

    Examples::

        volume, _ = generate_foam_phantom(64, seed=0)
        fbp = simulate_fbp(volume, num_angles=16, photons=1000, seed=0)
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (X, Y, Z), got shape {volume.shape}.")
    if num_angles < 1:
        raise ValueError(f"num_angles must be positive, got {num_angles}.")
    rng = np.random.default_rng(seed)
    axis = sample_ct_axis(rng, angle_std_deg=axis_angle_std_deg) if axis is None else axis
    rotation = np.eye(4)
    rotation[:3, :3] = rotation_to_axis(axis)

    # pad to a cube, then rotate onto a bigger cube of the same parity (a parity change would resample every voxel
    # half-way between two, a needless blur) whose slices hold the whole volume inside their inscribed circle;
    # MONAI's affine maps output to input coordinates: rotated(p) = volume(R p), so e_z -> axis
    cube = max(volume.shape)
    side = int(np.ceil(np.sqrt(3) * cube)) + 2
    side += (side - cube) % 2
    to_ct = Compose(
        [
            SpatialPad(spatial_size=(cube,) * 3),
            Affine(
                affine=torch.as_tensor(rotation),
                spatial_size=(side,) * 3,
                mode=spline_order,
                padding_mode="zeros",
                image_only=True,
            ),
        ]
    )
    rotated = to_ct(torch.from_numpy(volume)[None])

    theta = np.arange(num_angles) * 180.0 / num_angles + rng.uniform(0.0, 180.0 / num_angles)
    sinograms = radon_slices(rotated[0].numpy(), theta)
    if photons is not None:
        sinograms = poisson_sinograms(sinograms, photons, attenuation, max(volume.shape), rng)
    fbp = MetaTensor(
        fbp_slices(sinograms, theta, filter_name=filter_name)[None], applied_operations=rotated.applied_operations
    )
    return to_ct.inverse(fbp)[0].numpy().astype(np.float32)
