"""The BraTS bundle's embedded dataset: synthetic cases generated only where the folder is missing or empty."""

from __future__ import annotations

import logging

from monai_iunet.data.embedded_dataset import ensure_dataset


def test_ensure_dataset_generates_only_when_missing_or_empty(tmp_path, caplog):
    target = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="monai_iunet.data.generate"):
        assert ensure_dataset(target, num_cases=2, spatial_size=12) == str(target)
    # the log says what is generated, and how much, before the work starts
    assert "generating a synthetic BraTS-like dataset (2 cases of 12x12x12 voxels) there" in caplog.text
    assert sorted(p.name for p in target.iterdir()) == ["SynthBraTS_00000", "SynthBraTS_00001"]
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]  # generated aside, then renamed into place
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_dataset(empty, num_cases=1, spatial_size=12)
    assert len(list(empty.iterdir())) == 1
    ensure_dataset(target, num_cases=5, spatial_size=12)  # not empty: left alone
    assert len(list(target.iterdir())) == 2
