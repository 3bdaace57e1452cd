"""Realistic synthetic BraTS cases on the MNI152 anatomy (nilearn's templates), at reduced size."""

from __future__ import annotations

import socket

import nibabel as nib
import numpy as np
import pytest

from monai_iunet.cli import main as cli_main
from monai_iunet.data import generate_synthetic_brats
from monai_iunet.data.synthetic_anatomy import (
    _labels,
    _tumour,
    _world_grid,
    load_mni152,
    mni152_spacing,
    synthesize_mni152_case,
)

SIZE = (48, 48, 31)  # the BraTS field of view at 5 mm


@pytest.fixture(scope="module")
def case():
    return synthesize_mni152_case(SIZE, seed=3)


def test_templates_ship_with_nilearn_and_load_offline(monkeypatch):
    load_mni152.cache_clear()

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    templates, affine, centre = load_mni152()
    assert templates.shape == (1, 4, 197, 233, 189)
    assert np.allclose(np.diag(affine)[:3], 1.0)  # 1 mm templates
    mask = templates[0, 3].numpy() > 0.5
    assert 1.0e6 < mask.sum() < 2.0e6  # an adult brain, 1-2 litres
    assert float(templates[0, 0].numpy()[~mask].max()) <= 0.25  # the T1 template is skull-stripped
    assert np.all(np.abs(centre) < 40)  # the brain is near the MNI origin


def test_case_shape_labels_and_background(case):
    image, label = case
    assert image.shape == (4, *SIZE) and image.dtype == np.float32
    assert label.shape == SIZE and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2, 4}
    brain = image[1] > 0
    assert 0.15 < brain.mean() < 0.5  # a brain inside the 240 x 240 x 155 mm box
    assert np.all(image[:, ~brain] == 0) and np.all(label[~brain] == 0)  # skull-stripped, as BraTS


def test_tissue_contrasts_per_modality(case):
    image, label = case
    healthy = (image[1] > 0) & (label == 0)
    ref = {m: np.median(image[m][healthy]) for m in range(4)}
    flair, t1, t1ce, t2 = range(4)
    assert np.median(image[flair][label == 2]) > 1.3 * ref[flair]  # edema bright on FLAIR
    assert np.median(image[t2][label == 2]) > 1.05 * ref[t2]  # and brighter than most brain on T2
    assert np.median(image[t1ce][label == 4]) > 1.4 * ref[t1ce]  # enhancing rim on T1ce
    assert np.median(image[t1][label == 1]) < 0.7 * ref[t1]  # necrotic core dark on T1


def test_same_seed_same_case_and_cases_differ(case):
    again = synthesize_mni152_case(SIZE, seed=3)
    np.testing.assert_array_equal(case[1], again[1])
    np.testing.assert_allclose(case[0], again[0])
    other_image, other_label = synthesize_mni152_case(SIZE, seed=4)
    brain, other_brain = case[0][1] > 0, other_image[1] > 0
    assert (brain != other_brain).mean() > 0.01  # per-case deformation: the brains themselves differ
    assert not np.array_equal(case[1], other_label)


def test_tumour_pushes_tissue_away_monotonically():
    world = _world_grid((40, 40, 40), (3.0, 3.0, 3.0))
    wm = np.zeros((10, 10, 10), dtype=np.float32)
    wm[5, 5, 5] = 1.0  # the only white matter: the tumour goes there
    coarse = world[:, ::4, ::4, ::4]
    displaced, d = _tumour(world, coarse, wm, np.random.default_rng(0))
    centre = coarse[:, 5, 5, 5]
    r = np.linalg.norm(world - centre[:, None, None, None], axis=0)
    r_from = np.linalg.norm(displaced - centre[:, None, None, None], axis=0)
    assert np.all(r_from <= r + 1e-4)  # the tissue at radius r came from nearer the centre
    assert (r - r_from).max() > 3.0  # by several mm near the tumour
    far = r > 110
    assert np.all(r[far] - r_from[far] < 0.5)  # and hardly at all far away
    ray = world[:, 20, 20:, 20] - centre[:, None]
    order = np.linalg.norm(displaced[:, 20, 20:, 20] - centre[:, None], axis=0)
    assert np.all(np.diff(order[np.linalg.norm(ray, axis=0).argsort()]) >= -1e-4)  # no folding along a ray
    assert d.min() < 1.0  # there is a tumour


def test_edema_follows_white_matter():
    shape = (40, 40, 40)
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) - 20 for s in shape), indexing="ij"))
    d = np.sqrt((grid**2).sum(0)) / 6.0  # a tumour of radius 6 voxels in the middle
    wm = np.zeros(shape, dtype=np.float32)
    wm[:20] = 1.0  # white matter on one side, grey matter on the other
    gm = 1.0 - wm
    label = _labels(d, wm, gm, np.ones(shape, bool), np.random.default_rng(1), shape)
    edema = label == 2
    assert edema[:20].sum() > 3 * edema[20:].sum()
    assert np.all(label[d < 0.3] == 1) and np.any(label == 4)


def test_generate_and_cli_write_mni152_cases(tmp_path):
    size = (32, 32, 21)
    dirs = generate_synthetic_brats(tmp_path / "api", num_cases=1, spatial_size=size, anatomy="mni152", seed=1)
    img = nib.load(f"{dirs[0]}/SynthBraTS_00000_flair.nii.gz")
    assert img.shape == size
    with pytest.raises(ValueError, match="anatomy"):
        generate_synthetic_brats(tmp_path / "bad", num_cases=1, anatomy="sphere")
    spacing = [str(s) for s in mni152_spacing(size)]
    argv = ["generate-brats", str(tmp_path / "cli"), "--num-cases", "1", "--anatomy", "mni152", "--seed", "1"]
    assert cli_main([*argv, "--size", *map(str, size), "--spacing", *spacing]) == 0
    seg = nib.load(tmp_path / "cli" / "SynthBraTS_00000" / "SynthBraTS_00000_seg.nii.gz")
    np.testing.assert_allclose(np.abs(np.diag(seg.affine)[:3]), mni152_spacing(size), rtol=1e-5)
    expected = nib.load(f"{dirs[0]}/SynthBraTS_00000_seg.nii.gz").get_fdata()
    np.testing.assert_array_equal(seg.get_fdata(), expected)  # the same case through the API and the CLI


def test_rejects_tiny_grids():
    with pytest.raises(ValueError, match="at least 16"):
        synthesize_mni152_case((8, 8, 8))
