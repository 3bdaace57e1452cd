"""CT simulation: rotation axis, Poisson noise model, FBP quality with and without undersampling and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import PSNRMetric, SSIMMetric
from monai.transforms import SpatialPad

from monai_iunet.data.ct import (
    fbp_slices,
    poisson_sinograms,
    radon_slices,
    rotation_to_axis,
    sample_ct_axis,
    simulate_fbp,
)
from monai_iunet.data.foam import generate_foam_phantom


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return generate_foam_phantom(32, seed=0)[0]


def _psnr_ssim(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    a, b = torch.from_numpy(image)[None, None], torch.from_numpy(truth)[None, None]
    return float(PSNRMetric(max_val=1.0)(a, b)), float(SSIMMetric(spatial_dims=3, data_range=1.0)(a, b))


@pytest.mark.parametrize("axis", [(1, 1, 1), (0, 0, 1), (0, 0, -2), (1, -2, 0.5)])
def test_rotation_to_axis(axis):
    r = rotation_to_axis(axis)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r @ [0, 0, 1], np.asarray(axis) / np.linalg.norm(axis), atol=1e-12)


def test_sampled_axis_is_a_perturbed_diagonal():
    rng = np.random.default_rng(0)
    axes = np.stack([sample_ct_axis(rng, angle_std_deg=5.0) for _ in range(200)])
    np.testing.assert_allclose(np.linalg.norm(axes, axis=1), 1.0)
    angles = np.rad2deg(np.arccos(axes @ (np.ones(3) / np.sqrt(3))))
    assert 2.0 < angles.mean() < 6.0  # half-normal with scale 5 degrees: mean 4 degrees
    assert angles.max() < 25.0 and angles.min() > 0.0
    assert np.linalg.matrix_rank(axes - axes.mean(0)) == 3  # tilted in all directions


def test_poisson_noise_is_unbiased_with_the_expected_spread():
    rng = np.random.default_rng(0)
    line_integrals = np.full(20000, 20.0)  # voxels times density
    noisy = poisson_sinograms(line_integrals, photons=1000, attenuation=2.0, voxels_per_side=32, rng=rng)
    scale = 2.0 / 32
    expected_std = 1.0 / np.sqrt(1000 * np.exp(-scale * 20.0)) / scale  # delta method on -log(counts / photons)
    assert noisy.mean() == pytest.approx(20.0, abs=0.05)
    assert noisy.std() == pytest.approx(expected_std, rel=0.05)
    quieter = poisson_sinograms(line_integrals, photons=100000, attenuation=2.0, voxels_per_side=32, rng=rng)
    assert quieter.std() == pytest.approx(expected_std / 10, rel=0.05)


def test_untilted_scan_is_slicewise_radon_and_fbp(phantom):
    """With the rotation axis on the grid's last axis, the simulation is exactly slice-wise radon + FBP."""
    theta = np.arange(8) * 180.0 / 8
    fbp = simulate_fbp(phantom, num_angles=8, photons=None, axis=(0, 0, 1), seed=0)
    rng = np.random.default_rng(0)  # the angle offset is the first draw after the (given) axis
    theta = theta + rng.uniform(0.0, 180.0 / 8)
    side = 58  # ceil(sqrt(3) * 32) + 2, same parity as 32
    padded = SpatialPad((side, side, 32))(torch.from_numpy(phantom)[None])[0].numpy()
    expected = fbp_slices(radon_slices(padded, theta), theta)[13:45, 13:45]
    np.testing.assert_allclose(fbp, expected, atol=1e-4)


def test_fbp_differs_from_truth_by_the_expected_amount(phantom):
    full = simulate_fbp(phantom, num_angles=100, photons=None, seed=0)
    undersampled = simulate_fbp(phantom, num_angles=8, photons=None, seed=0)
    noisy = simulate_fbp(phantom, num_angles=8, photons=300, seed=0)
    assert full.shape == phantom.shape and full.dtype == np.float32
    psnr_full, ssim_full = _psnr_ssim(full, phantom)
    psnr_under, ssim_under = _psnr_ssim(undersampled, phantom)
    psnr_noisy, ssim_noisy = _psnr_ssim(noisy, phantom)
    # a full noise-free scan is close to the truth (limited by the partial-volume edges and the ramp filter) ...
    assert psnr_full > 18.0 and ssim_full > 0.8
    # ... undersampling adds streaks and Poisson noise adds more: each degrades the reconstruction further
    assert psnr_full - psnr_under > 2.0 and ssim_under < ssim_full - 0.05
    assert psnr_under - psnr_noisy > 1.0 and ssim_noisy < ssim_under
    assert 8.0 < psnr_noisy < 16.0
    # FBP is linear and calibrated: the total attenuation is preserved
    assert noisy.sum() == pytest.approx(phantom.sum(), rel=0.05)


def test_tilted_axis_changes_the_artefacts(phantom):
    straight = simulate_fbp(phantom, num_angles=8, photons=None, axis=(0, 0, 1), seed=0)
    tilted = simulate_fbp(phantom, num_angles=8, photons=None, seed=0)
    assert np.abs(straight - tilted).mean() > 0.02
    # streaks of an untilted scan stay within slices: its slices are independent of each other
    top = phantom.copy()
    top[..., :16] = 0
    straight_top = simulate_fbp(top, num_angles=8, photons=None, axis=(0, 0, 1), seed=0)
    assert np.abs(straight_top[..., :14]).max() < 1e-4
    tilted_top = simulate_fbp(top, num_angles=8, photons=None, axis=(1, 1, 1), seed=0)
    assert np.abs(tilted_top[..., :14]).max() > 0.05


def test_seeded():
    volume = generate_foam_phantom(16, seed=1)[0]
    a = simulate_fbp(volume, num_angles=6, seed=3)
    np.testing.assert_array_equal(a, simulate_fbp(volume, num_angles=6, seed=3))
    assert not np.array_equal(a, simulate_fbp(volume, num_angles=6, seed=4))


def test_invalid_arguments(phantom):
    with pytest.raises(ValueError, match="3D"):
        simulate_fbp(phantom[0])
    with pytest.raises(ValueError, match="num_angles"):
        simulate_fbp(phantom, num_angles=0)
    with pytest.raises(ValueError, match="axis"):
        rotation_to_axis((0, 0, 0))
