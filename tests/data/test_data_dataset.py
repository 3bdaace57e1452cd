"""CaseDataset: errors that name the case and the file, and skipping broken cases."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import Compose, LoadImaged, NormalizeIntensityd

from monai_iunet.data import BROKEN_CASE_ADVICE, BrokenCaseError, CaseDataset, build_datalist, generate_synthetic_brats
from monai_iunet.transforms import CheckCased


@pytest.fixture()
def items(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=3, spatial_size=(17, 19, 15))
    datalist = build_datalist(tmp_path)
    items = sorted(datalist["training"] + datalist["validation"], key=lambda item: item["case"])
    # case 1: NaN voxels in its T1ce file
    t1ce = items[1]["image"][2]
    img = nib.load(t1ce)
    data = np.asarray(img.dataobj).copy()
    data[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), t1ce)
    return items


TRANSFORM = Compose(
    [
        LoadImaged(keys=["image", "label"], image_only=True, ensure_channel_first=True),
        CheckCased(label_values=(1, 2, 4)),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ]
)


@pytest.mark.parametrize("cache_rate", [0.0, 1.0])
def test_broken_case_error_names_case_and_file(items, cache_rate):
    dataset = CaseDataset(items, TRANSFORM, label_values=(1, 2, 4), cache_rate=cache_rate)
    assert dataset[0]["image"].shape == (4, 17, 19, 15)
    with pytest.raises(BrokenCaseError) as error:
        dataset[1]
    message = str(error.value)
    assert message.startswith("case SynthBraTS_00001: ")
    assert f"{items[1]['image'][2]} holds 1 NaN/Inf voxels" in message
    assert message.endswith(f"\n{BROKEN_CASE_ADVICE}")
    with pytest.raises(BrokenCaseError, match=r"NaN/Inf voxels\nPass --skip_broken_cases True\.$"):
        CaseDataset(items, TRANSFORM, cache_rate=cache_rate, advice="Pass --skip_broken_cases True.")[1]


@pytest.mark.parametrize("cache_rate", [0.0, 1.0])
def test_skip_broken_returns_next_case_with_warning(items, cache_rate, caplog):
    dataset = CaseDataset(items, TRANSFORM, skip_broken=True, cache_rate=cache_rate)
    with caplog.at_level(logging.WARNING):
        out = dataset[1]
    assert out["image"].meta["filename_or_obj"] == items[2]["image"][0]
    assert "skipping broken case SynthBraTS_00001" in caplog.text and "NaN/Inf" in caplog.text


def test_every_case_broken(items):
    for item in items:
        item["label"] = item["label"].replace("_seg", "_missing")
    dataset = CaseDataset(items, TRANSFORM, skip_broken=True)
    with pytest.raises(BrokenCaseError, match="every one of the 3 cases is broken"):
        dataset[0]
