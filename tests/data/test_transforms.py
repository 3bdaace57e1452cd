"""The BraTS transforms: case checks and TC/WT/ET channels back to label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses, MapLabelValue

from monai_iunet.brats import label_convention
from monai_iunet.data import synthesize_brats_case
from monai_iunet.errors import LabelConventionError
from monai_iunet.transforms import CheckCased, ConvertBratsChannelsToLabels, ConvertBratsChannelsToLabelsd


@pytest.fixture(scope="module")
def case():
    image, label = synthesize_brats_case((20, 18, 16), seed=0)
    return image, label


def _data(image, label):
    return {
        "image": MetaTensor(torch.as_tensor(image), meta={"filename_or_obj": "case_flair.nii.gz"}),
        "label": MetaTensor(torch.as_tensor(label)[None].float(), meta={"filename_or_obj": "case_seg.nii.gz"}),
    }


def test_check_case_passes_good_data_unchanged(case):
    data = _data(*case)
    out = CheckCased()(data)
    assert out["image"] is data["image"] and out["label"] is data["label"]
    assert "label" not in CheckCased()({"image": data["image"]})  # inference: no label is fine


def test_check_case_rejects_nan_and_empty_channels(case):
    image, label = case
    bad = image.copy()
    bad[2, 5, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"case_flair\.nii\.gz channel 2 \(T1ce\) holds 1 NaN/Inf voxels"):
        CheckCased()(_data(bad, label))
    bad = image.copy()
    bad[0] = 0
    with pytest.raises(ValueError, match=r"channel 0 \(FLAIR\) is all zero"):
        CheckCased()(_data(bad, label))


def test_check_case_rejects_wrong_channels_labels_and_shapes(case):
    image, label = case
    with pytest.raises(ValueError, match="has 3 channels but the network takes 4.*in_channels"):
        CheckCased()(_data(image[:3], label))
    with pytest.raises(LabelConventionError, match=r"case_seg\.nii\.gz holds label values \[1, 2, 4\]: the brats2021"):
        CheckCased(label_values=(1, 2, 3))(_data(image, label))  # valid labels of another convention: an error
    odd = label.copy()
    odd[odd == 4] = 7  # no convention's value: a broken label
    with pytest.raises(ValueError, match=r"case_seg\.nii\.gz holds unexpected label values \[7\]"):
        CheckCased()(_data(image, odd))
    with pytest.raises(ValueError, match=r"case_seg\.nii\.gz has spatial shape \(20, 18, 15\)"):
        CheckCased()(_data(image, label[..., :-1]))


@pytest.mark.parametrize("layout", ["brats2021", "brats2023", "msd"])
def test_channels_to_labels_inverts_the_bundle_label_pipeline(case, layout):
    """Label map in the layout's convention → TC/WT/ET channels (as the bundle does) → back to the same map."""
    values = list(label_convention(layout).values)
    brats = case[1]
    original = np.zeros_like(brats)
    for brats_value, value in zip((1, 2, 4), values):
        original[brats == brats_value] = value
    canonical = MapLabelValue(orig_labels=values, target_labels=[1, 2, 4])(original[None])
    channels = ConvertToMultiChannelBasedOnBratsClasses(et_label=4)(canonical)
    back = ConvertBratsChannelsToLabels(*values)(torch.as_tensor(channels))
    assert back.shape == (1, *brats.shape) and back.dtype == torch.uint8
    np.testing.assert_array_equal(back[0].numpy(), original)


def test_channels_to_labels_priority_and_dict_version():
    # overlapping or inconsistent channels: ET wins over TC, TC over WT
    pred = torch.zeros(3, 1, 1, 4)
    pred[:, 0, 0, 0] = torch.tensor([1.0, 1.0, 1.0])
    pred[:, 0, 0, 1] = torch.tensor([1.0, 0.0, 0.0])
    pred[:, 0, 0, 2] = torch.tensor([0.0, 1.0, 0.0])
    out = ConvertBratsChannelsToLabelsd("pred", necrosis=2, edema=1, enhancing=3)({"pred": pred})["pred"]
    assert out[0, 0, 0].tolist() == [3, 2, 1, 0]
    assert isinstance(ConvertBratsChannelsToLabels()(pred.numpy()), np.ndarray)
    with pytest.raises(ValueError, match="expected 3 channels"):
        ConvertBratsChannelsToLabels()(pred[:2])
