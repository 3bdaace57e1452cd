"""Foam phantoms: geometry of the packing, density range, oversampling, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from monai_iunet.data.foam import (
    FoamGeometry,
    generate_foam_phantom,
    rasterize_foam,
    sample_foam_geometry,
    voxel_centres,
)


@pytest.fixture(scope="module")
def geometry() -> FoamGeometry:
    return sample_foam_geometry(num_holes=200, max_hole_radius=0.2, min_hole_radius=0.05, seed=3)


def test_holes_inside_cylinder_and_disjoint(geometry):
    holes = geometry.holes
    assert len(holes) > 20
    centres, radii = holes[:, :3], holes[:, 3]
    # every hole lies entirely inside the cylinder
    assert np.all(np.hypot(centres[:, 0], centres[:, 1]) + radii <= geometry.radius + 1e-9)
    assert np.all(np.abs(centres[:, 2]) + radii <= geometry.half_height + 1e-9)
    np.testing.assert_array_less(radii - 1e-9, geometry.wall_clearance(centres))
    # no two holes overlap
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    gap = dist - radii[:, None] - radii[None]
    np.fill_diagonal(gap, np.inf)
    assert gap.min() >= -1e-9


def test_hole_sizes_vary_within_bounds(geometry):
    radii = geometry.holes[:, 3]
    assert radii.max() == pytest.approx(0.2)
    assert radii.min() >= 0.05
    assert radii.min() < 0.1  # smaller holes fill the gaps between the big ones
    assert np.all(np.diff(radii) <= 1e-12)  # greedy packing: largest first


def test_cylinder_size_varies():
    sizes = {(g.radius, g.half_height) for g in (sample_foam_geometry(num_holes=1, seed=s) for s in range(4))}
    assert len(sizes) == 4
    for radius, half_height in sizes:
        assert 0.6 <= radius <= 0.9 and 0.6 <= half_height <= 0.9


def test_volume_density_range_and_structure():
    volume, geometry = generate_foam_phantom(32, seed=0, density=0.5)
    assert volume.shape == (32, 32, 32) and volume.dtype == np.float32
    assert volume.min() == 0.0 and volume.max() == pytest.approx(0.5)
    # outside the cylinder is empty
    x = voxel_centres(32)
    outside = x[:, None, None] ** 2 + x[None, :, None] ** 2 > (geometry.radius + 2 / 32) ** 2
    assert np.all(volume[np.broadcast_to(outside, volume.shape)] == 0)
    # the trilinear downsampling leaves partial-volume values on hole boundaries
    partial = (volume > 0.01) & (volume < 0.49)
    assert 0.02 < partial.mean() < 0.5
    # material fraction: holes take a good part of the cylinder, but not all of it
    cylinder = np.pi * geometry.radius**2 * 2 * geometry.half_height
    material = volume.sum() / 0.5 * (2 / 32) ** 3
    assert 0.2 < material / cylinder < 0.8


def test_holes_are_empty_in_the_volume():
    geometry = sample_foam_geometry(num_holes=30, max_hole_radius=0.25, min_hole_radius=0.15, seed=1)
    volume = rasterize_foam(geometry, 32, oversampling=1)
    assert set(np.unique(volume)) <= {0.0, 1.0}
    x = voxel_centres(32)
    for cx, cy, cz, _ in geometry.holes:
        i, j, k = (int(np.argmin(np.abs(x - c))) for c in (cx, cy, cz))
        assert volume[i, j, k] == 0.0
    # a point of material: the cylinder's outer layer, between the holes
    assert volume.max() == 1.0


def test_oversampling_averages_blocks():
    geometry = sample_foam_geometry(num_holes=50, seed=2)
    fine = rasterize_foam(geometry, 32, oversampling=1)
    coarse = rasterize_foam(geometry, 16, oversampling=2)
    np.testing.assert_allclose(coarse, fine.reshape(16, 2, 16, 2, 16, 2).mean(axis=(1, 3, 5)), atol=1e-6)


def test_seeded_and_anisotropic():
    a, _ = generate_foam_phantom((24, 20, 16), seed=5)
    b, _ = generate_foam_phantom((24, 20, 16), seed=5)
    c, _ = generate_foam_phantom((24, 20, 16), seed=6)
    assert a.shape == (24, 20, 16)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="min_hole_radius"):
        sample_foam_geometry(min_hole_radius=0.3, max_hole_radius=0.2)
    with pytest.raises(ValueError, match="radius_range"):
        sample_foam_geometry(radius_range=(0.5, 1.5))
