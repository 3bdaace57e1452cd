"""Foam phantoms: a cylinder of material filled with many non-overlapping spherical holes.

The phantoms follow the recipe of Pelt, Batenburg & Sethian, "Improving tomographic reconstruction from limited
data using mixed-scale dense convolutional neural networks", J. Imaging 4(11):128, 2018, which the iUNet paper
(Etmann et al. 2020, §4.1) uses for its CT post-processing experiment: holes are placed one at a time, each at the
candidate point that admits the largest hole (capped at a maximum radius, ties broken at random), which packs big
holes first and fills the gaps with ever smaller ones. The volume is drawn at ``oversampling`` times the target
resolution and downsampled trilinearly, so that hole boundaries carry partial-volume values instead of aliasing.

This is an independent implementation (numpy, vectorised over candidate points); it does not need Pelt's
``foam_ct_phantom`` package and its compiled extension.

Coordinates: the volume spans the cube ``[-1, 1]^3``; array axis ``i`` is coordinate ``i``, and the cylinder axis is
the last array axis (the NIfTI ``z`` axis when the array is saved as ``(x, y, z)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import Resize
from monai.utils import ensure_tuple_rep

__all__ = ["FoamGeometry", "sample_foam_geometry", "rasterize_foam", "generate_foam_phantom", "voxel_centres"]


@dataclass(frozen=True)
class FoamGeometry:
    """The continuous description of one foam phantom, in the coordinates of the cube ``[-1, 1]^3``.

    Attributes:
        radius: radius of the cylinder (its axis is the last coordinate axis, through the origin).
        half_height: the cylinder spans ``-half_height <= z <= half_height``.
        holes: array of shape ``(num_holes, 4)``: hole centre ``(x, y, z)`` and hole radius per row, largest first.
    """

    radius: float
    half_height: float
    holes: np.ndarray

    def wall_clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance from each point to the cylinder's surface: positive inside, negative outside.

        Args:
            points: array of shape ``(N, 3)``.

        Returns:
            array of shape ``(N,)``: the radius of the largest ball centred at each point that fits in the cylinder.
        """
        return np.minimum(self.radius - np.hypot(points[:, 0], points[:, 1]), self.half_height - np.abs(points[:, 2]))


def sample_foam_geometry(
    num_holes: int = 500,
    max_hole_radius: float = 0.15,
    min_hole_radius: float = 0.02,
    radius_range: tuple[float, float] = (0.6, 0.9),
    half_height_range: tuple[float, float] = (0.6, 0.9),
    num_trials: int = 30000,
    seed: int | np.random.Generator | None = None,
) -> FoamGeometry:
    """Draw a cylinder of random size and pack it greedily with non-overlapping spherical holes.

    ``num_trials`` candidate centres are drawn uniformly in the cylinder. Each step places a hole at a candidate
    with the largest clearance (its distance to the cylinder wall and to all holes placed so far), with the hole
    radius equal to that clearance capped at ``max_hole_radius``; while several candidates admit the maximum radius
    one of them is chosen at random. The clearances are then updated against the new hole in one vectorised step.
    Packing stops after ``num_holes`` holes or when no candidate admits a hole of ``min_hole_radius``.

    Args:
        num_holes: maximum number of holes.
        max_hole_radius: largest hole radius (unit: half the side of the volume).
        min_hole_radius: smallest hole radius; smaller holes would not be resolved by the grid.
        radius_range: the cylinder radius is drawn uniformly from this range.
        half_height_range: the cylinder half height is drawn uniformly from this range.
        num_trials: number of candidate centres; more candidates give a denser packing.
        seed: seed or numpy generator; the same seed gives the same geometry.

    Returns:
        the phantom's geometry.
    """
    if not 0 < min_hole_radius <= max_hole_radius:
        raise ValueError(
            f"hole radii must satisfy 0 < min_hole_radius <= max_hole_radius, got {min_hole_radius}, {max_hole_radius}."
        )
    for name, (low, high) in (("radius_range", radius_range), ("half_height_range", half_height_range)):
        if not 0 < low <= high <= 1:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1 (inside the unit cube), got {(low, high)}.")
    rng = np.random.default_rng(seed)
    radius = float(rng.uniform(*radius_range))
    half_height = float(rng.uniform(*half_height_range))

    # candidates uniform in the cylinder (the sqrt makes them uniform in area, not in radius)
    rho = radius * np.sqrt(rng.uniform(size=num_trials))
    phi = rng.uniform(0, 2 * np.pi, size=num_trials)
    points = np.stack([rho * np.cos(phi), rho * np.sin(phi), rng.uniform(-half_height, half_height, num_trials)], 1)
    clearance = FoamGeometry(radius, half_height, np.zeros((0, 4))).wall_clearance(points)

    holes: list[np.ndarray] = []
    while len(holes) < num_holes:
        at_max = np.flatnonzero(clearance >= max_hole_radius)
        best = rng.choice(at_max) if at_max.size else int(np.argmax(clearance))
        hole_radius = min(float(clearance[best]), max_hole_radius)
        if hole_radius < min_hole_radius:
            break
        holes.append(np.append(points[best], hole_radius))
        np.minimum(clearance, np.linalg.norm(points - points[best], axis=1) - hole_radius, out=clearance)
    return FoamGeometry(radius, half_height, np.array(holes).reshape(-1, 4))


def voxel_centres(size: int) -> np.ndarray:
    """Coordinates of the voxel centres along one axis of ``size`` voxels spanning ``[-1, 1]``."""
    return (2 * np.arange(size) + 1) / size - 1


def rasterize_foam(
    geometry: FoamGeometry,
    spatial_size: Sequence[int] | int = 64,
    oversampling: int = 2,
    density: float = 1.0,
) -> np.ndarray:
    """Draw a foam geometry on a voxel grid: ``density`` in the material, 0 in the holes and outside the cylinder.

    The binary volume is drawn at ``oversampling`` times ``spatial_size`` and downsampled with MONAI's trilinear
    ``Resize``; for an integer factor this averages blocks of voxels, so boundary voxels hold the material fraction.

    Args:
        geometry: the phantom.
        spatial_size: output size per axis (int for a cube).
        oversampling: integer factor of the drawing grid over the output grid (1 draws directly, binary).
        density: attenuation of the material.

    Returns:
        float32 array of shape ``spatial_size`` with values in ``[0, density]``.
    """
    out_size = ensure_tuple_rep(spatial_size, 3)
    if oversampling < 1:
        raise ValueError(f"oversampling must be a positive integer, got {oversampling}.")
    fine_size = tuple(int(s) * oversampling for s in out_size)
    x, y, z = (voxel_centres(s) for s in fine_size)
    inside = (x[:, None, None] ** 2 + y[None, :, None] ** 2 <= geometry.radius**2) & (
        np.abs(z)[None, None, :] <= geometry.half_height
    )
    for cx, cy, cz, r in geometry.holes:
        # carve each hole in its bounding box only: cost grows with the hole's volume, not the grid's
        box = [np.flatnonzero(np.abs(c - centre) <= r) for c, centre in zip((x, y, z), (cx, cy, cz))]
        if any(b.size == 0 for b in box):
            continue
        sl = tuple(slice(b[0], b[-1] + 1) for b in box)
        d2 = (x[sl[0], None, None] - cx) ** 2 + (y[None, sl[1], None] - cy) ** 2 + (z[None, None, sl[2]] - cz) ** 2
        inside[sl] &= d2 > r**2
    volume = torch.from_numpy(inside[None].astype(np.float32))
    if oversampling > 1:
        volume = Resize(spatial_size=out_size, mode="trilinear", align_corners=False)(volume)
    return (density * torch.as_tensor(volume)[0]).numpy().astype(np.float32)


def generate_foam_phantom(
    spatial_size: Sequence[int] | int = 64,
    seed: int | np.random.Generator | None = None,
    oversampling: int = 2,
    density: float = 1.0,
    max_hole_radius: float = 0.15,
    min_hole_radius: float | None = None,
    **geometry_kwargs,
) -> tuple[np.ndarray, FoamGeometry]:
    """Sample a foam geometry and draw it: the one-call entry point.

    Args:
        spatial_size: output size per axis (int for a cube).
        seed: seed or numpy generator; the same seed gives the same phantom.
        oversampling: drawing resolution over output resolution (the paper uses 2).
        density: attenuation of the material.
        max_hole_radius: largest hole radius (unit: half the side of the volume).
        min_hole_radius: smallest hole radius; default one output voxel (holes the grid resolves), at most
            ``max_hole_radius``.
        geometry_kwargs: the other arguments of :func:`sample_foam_geometry` (``num_holes``, ``radius_range``, ...).

    Returns:
        the float32 volume of shape ``spatial_size`` and its geometry.

    Examples::

        volume, geometry = generate_foam_phantom(64, seed=0)  # a 64^3 volume in about a second
    """
    size = ensure_tuple_rep(spatial_size, 3)
    if min_hole_radius is None:
        min_hole_radius = min(2.0 / min(size), max_hole_radius)
    geometry = sample_foam_geometry(
        max_hole_radius=max_hole_radius, min_hole_radius=min_hole_radius, seed=seed, **geometry_kwargs
    )
    return rasterize_foam(geometry, size, oversampling=oversampling, density=density), geometry
