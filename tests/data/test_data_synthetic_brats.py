"""The synthetic BraTS-like generator and its console command."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest

from monai_iunet.brats import MODALITY_ORDER, MSD
from monai_iunet.cli import main
from monai_iunet.data import generate_synthetic_brats, synthesize_brats_case
from monai_iunet.progress import PROGRESS_ENV

SHAPE = (29, 33, 25)  # odd and different per axis


def _region_mean(image: np.ndarray, mask: np.ndarray, channel: str) -> float:
    return float(image[MODALITY_ORDER.index(channel)][mask].mean())


def test_case_shapes_labels_and_support():
    image, label = synthesize_brats_case(SHAPE, seed=3)
    assert image.shape == (4, *SHAPE) and image.dtype == np.float32
    assert label.shape == SHAPE and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2, 4}
    assert np.isfinite(image).all() and (image >= 0).all()
    brain = image.sum(0) > 0
    assert 0.15 < brain.mean() < 0.6  # a brain-shaped support, not the whole box
    assert not brain[0].any() and not brain[-1].any()  # zero background around it, as in skull-stripped data
    assert brain[label > 0].all()  # the tumour lies inside the brain


def test_case_is_seeded():
    a = synthesize_brats_case(SHAPE, seed=5)
    b = synthesize_brats_case(SHAPE, seed=5)
    c = synthesize_brats_case(SHAPE, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_case_has_brats_contrasts(seed):
    image, label = synthesize_brats_case((48, 48, 48), seed=seed)
    healthy = (image.sum(0) > 0) & (label == 0)
    necrosis, edema, enhancing = label == 1, label == 2, label == 4
    # enhancing rim bright on T1ce, brighter than necrosis and healthy tissue
    assert _region_mean(image, enhancing, "t1ce") > 1.3 * _region_mean(image, healthy, "t1ce")
    assert _region_mean(image, enhancing, "t1ce") > 1.5 * _region_mean(image, necrosis, "t1ce")
    # edema bright on FLAIR and T2
    assert _region_mean(image, edema, "flair") > 1.3 * _region_mean(image, healthy, "flair")
    assert _region_mean(image, edema, "t2") > 1.3 * _region_mean(image, healthy, "t2")
    # necrosis dark on T1ce
    assert _region_mean(image, necrosis, "t1ce") < _region_mean(image, healthy, "t1ce")


def test_tumour_position_and_size_vary():
    centres, sizes = [], []
    for seed in range(6):
        _, label = synthesize_brats_case((40, 40, 40), seed=seed)
        centres.append(np.argwhere(label > 0).mean(0))
        sizes.append((label > 0).sum())
    assert np.ptp(np.array(centres), axis=0).max() > 5
    assert max(sizes) > 1.5 * min(sizes)


def test_generate_brats2021_layout(tmp_path):
    dirs = generate_synthetic_brats(tmp_path, num_cases=3, spatial_size=SHAPE, spacing=(1.0, 1.2, 1.5), num_unlabeled=1)
    assert [d.split("/")[-1] for d in dirs] == ["SynthBraTS_00000", "SynthBraTS_00001", "SynthBraTS_00002"]
    case = tmp_path / "SynthBraTS_00000"
    affines = []
    for name in (*MODALITY_ORDER, "seg"):
        img = nib.load(case / f"SynthBraTS_00000_{name}.nii.gz")
        assert img.shape == SHAPE
        affines.append(img.affine)
    np.testing.assert_allclose(np.abs(np.diag(affines[0]))[:3], (1.0, 1.2, 1.5))
    assert all(np.array_equal(a, affines[0]) for a in affines)
    assert not (tmp_path / "SynthBraTS_00002" / "SynthBraTS_00002_seg.nii.gz").exists()
    assert (tmp_path / "SynthBraTS_00002" / "SynthBraTS_00002_flair.nii.gz").exists()


def test_generate_keeps_cases_when_more_are_added(tmp_path):
    generate_synthetic_brats(tmp_path / "a", num_cases=2, spatial_size=SHAPE, seed=4)
    generate_synthetic_brats(tmp_path / "b", num_cases=3, spatial_size=SHAPE, seed=4)
    for case in ("SynthBraTS_00000", "SynthBraTS_00001"):
        a = nib.load(tmp_path / "a" / case / f"{case}_t1ce.nii.gz").get_fdata()
        b = nib.load(tmp_path / "b" / case / f"{case}_t1ce.nii.gz").get_fdata()
        np.testing.assert_array_equal(a, b)


def test_generate_brats2023_and_msd_conventions(tmp_path):
    generate_synthetic_brats(tmp_path / "b23", num_cases=1, spatial_size=SHAPE, layout="brats2023")
    b23 = tmp_path / "b23" / "SynthBraTS_00000"
    assert sorted(p.name for p in b23.iterdir()) == sorted(
        f"SynthBraTS_00000-{m}.nii.gz" for m in ("t2f", "t1n", "t1c", "t2w", "seg")
    )
    assert set(np.unique(nib.load(b23 / "SynthBraTS_00000-seg.nii.gz").get_fdata())) == {0, 1, 2, 3}

    generate_synthetic_brats(tmp_path / "msd", num_cases=3, spatial_size=SHAPE, layout="msd", num_unlabeled=1)
    description = json.loads((tmp_path / "msd" / "dataset.json").read_text())
    assert description["numTraining"] == 2 and description["test"] == ["./imagesTs/SynthBraTS_00002.nii.gz"]
    assert nib.load(tmp_path / "msd" / "imagesTr" / "SynthBraTS_00000.nii.gz").shape == (*SHAPE, 4)
    # the same case in both conventions: BraTS 1 necrosis / 2 edema / 4 enhancing = MSD 2 / 1 / 3
    generate_synthetic_brats(tmp_path / "b21", num_cases=1, spatial_size=SHAPE)
    b21 = nib.load(tmp_path / "b21" / "SynthBraTS_00000" / "SynthBraTS_00000_seg.nii.gz").get_fdata()
    msd = nib.load(tmp_path / "msd" / "labelsTr" / "SynthBraTS_00000.nii.gz").get_fdata()
    for brats_value, region in ((1, "necrosis"), (2, "edema"), (4, "enhancing")):
        np.testing.assert_array_equal(b21 == brats_value, msd == MSD.value(region))


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_unlabeled"):
        generate_synthetic_brats(tmp_path, num_cases=2, num_unlabeled=3)
    with pytest.raises(ValueError, match="layout"):
        generate_synthetic_brats(tmp_path, num_cases=1, layout="brats2019")
    with pytest.raises(ValueError, match="at least 8"):
        synthesize_brats_case((4, 30, 30))


def test_cli_generate_brats(tmp_path, capsys):
    assert main(["generate-brats", str(tmp_path), "--num-cases", "2", "--size", "21", "23", "19"]) == 0
    out, err = capsys.readouterr()
    assert "wrote 2 synthetic BraTS cases" in out and err == ""  # stderr is no terminal here: no progress bar
    assert nib.load(tmp_path / "SynthBraTS_00001" / "SynthBraTS_00001_t2.nii.gz").shape == (21, 23, 19)
    assert main(["generate-brats", str(tmp_path / "msd"), "--num-cases", "1", "--size", "20", "--layout", "msd"]) == 0
    assert (tmp_path / "msd" / "dataset.json").exists()


def test_cli_reports_bad_arguments(tmp_path, capsys):
    assert main(["generate-brats", str(tmp_path), "--size", "20", "20"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "monai-iunet generate-brats: error: --size and --spacing take one or three values."
    )
    assert main(["generate-brats", str(tmp_path), "--num-cases", "0"]) == 2
    assert capsys.readouterr().err.startswith("monai-iunet generate-brats: error: ")


def test_generation_shows_a_bar_with_the_time_left_when_forced(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "on")
    generate_synthetic_brats(tmp_path, num_cases=2, spatial_size=12)
    assert re.search(r"synthetic cases: .*2/2 \[\d\d:\d\d<\d\d:\d\d, .*(case/s|s/case)", capsys.readouterr().err)
