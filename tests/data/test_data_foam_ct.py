"""The foam CT dataset generator: layout, datalist, reproducibility, and refusing to touch other folders."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_iunet.data.foam_ct import ensure_foam_ct_dataset, generate_foam_ct_dataset, make_foam_ct_pair


def test_dataset_layout_and_datalist(tmp_path):
    path = generate_foam_ct_dataset(str(tmp_path), num_train=2, num_val=1, num_test=1, spatial_size=16, num_angles=6)
    assert path == str(tmp_path / "dataset.json")
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["generator"]["num_angles"] == 6 and meta["generator"]["spatial_size"] == [16, 16, 16]
    training = load_decathlon_datalist(path, True, "training")
    test = load_decathlon_datalist(path, True, "test")
    assert len(training) == 2 and len(load_decathlon_datalist(path, True, "validation")) == 1 and len(test) == 1
    cases = [item["case"] for key in ("training", "validation", "test") for item in meta[key]]
    assert len(set(cases)) == 4  # the splits do not share volumes
    fbp, truth = nib.load(test[0]["image"]), nib.load(test[0]["label"])
    assert fbp.shape == truth.shape == (16, 16, 16)
    fbp, truth = fbp.get_fdata(), truth.get_fdata()
    assert 0.0 <= truth.min() and truth.max() <= 1.0
    assert fbp.min() < 0.0 and not np.allclose(fbp, truth, atol=0.1)  # streaks and noise undershoot zero


def test_volumes_are_reproducible_and_independent(tmp_path):
    generate_foam_ct_dataset(str(tmp_path / "a"), num_train=2, num_val=0, num_test=0, spatial_size=16, num_angles=4)
    generate_foam_ct_dataset(
        str(tmp_path / "b"), num_train=2, num_val=0, num_test=0, spatial_size=16, num_angles=4, num_workers=2
    )
    a0, a1, b0 = (
        nib.load(tmp_path / d / "fbp" / f"foam_00{i}.nii.gz").get_fdata() for d, i in (("a", 0), ("a", 1), ("b", 0))
    )
    np.testing.assert_array_equal(a0, b0)  # the same whatever the number of workers
    assert not np.array_equal(a0, a1)


def test_pair_is_seeded():
    fbp, truth = make_foam_ct_pair(16, seed=1, num_angles=4)
    fbp2, truth2 = make_foam_ct_pair(16, seed=1, num_angles=4)
    np.testing.assert_array_equal(fbp, fbp2)
    np.testing.assert_array_equal(truth, truth2)


def test_ensure_generates_only_into_an_empty_folder(tmp_path):
    target = tmp_path / "new"
    path = ensure_foam_ct_dataset(str(target), num_train=1, num_val=0, num_test=0, spatial_size=8, num_angles=4)
    stamp = (target / "dataset.json").stat().st_mtime_ns
    assert ensure_foam_ct_dataset(str(target), num_train=5) == path  # existing dataset: left as it is
    assert (target / "dataset.json").stat().st_mtime_ns == stamp and len(list((target / "fbp").iterdir())) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        ensure_foam_ct_dataset(str(other))
    with pytest.raises(ValueError, match="not all zero"):
        generate_foam_ct_dataset(str(tmp_path / "none"), num_train=0, num_val=0, num_test=0)
