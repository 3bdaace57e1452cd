"""The BraTS domain: modalities, label conventions, regions and layouts, each defined once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from monai_iunet.brats import (
    CONVENTIONS,
    LAYOUTS,
    MODALITY_ORDER,
    REGION_ORDER,
    Modality,
    Region,
    convert_labels,
    dataset_layout,
    label_convention,
    modality,
)


def test_modality_order_and_lookup():
    assert [str(m) for m in MODALITY_ORDER] == ["flair", "t1", "t1ce", "t2"]
    assert modality("T1CE") is Modality.T1CE
    with pytest.raises(ValueError, match="t1ce"):
        modality("t1c")


def test_conventions_round_trip_through_every_pair():
    label = np.array([0, 1, 2, 4, 4, 1])
    for target in CONVENTIONS:
        converted = convert_labels(label, "brats2021", target)
        assert convert_labels(converted, target, "brats2021").tolist() == label.tolist()
    assert convert_labels(label, "brats2021", "msd").tolist() == [0, 2, 1, 3, 3, 2]
    assert convert_labels(torch.tensor([0, 3]), "brats2023", "brats2021").tolist() == [0, 4]


def test_regions_agree_with_monai_channels_in_every_convention():
    rng = np.random.default_rng(0)
    label_2021 = rng.choice([0, 1, 2, 4], size=(6, 5, 4))
    monai_channels = ConvertToMultiChannelBasedOnBratsClasses()(label_2021[None])  # (3, ...) TC, WT, ET
    for name, convention in CONVENTIONS.items():
        masks = convention.region_masks(convert_labels(label_2021, "brats2021", name))
        assert list(masks) == list(REGION_ORDER)
        for channel, region in enumerate(REGION_ORDER):
            np.testing.assert_array_equal(masks[region], np.asarray(monai_channels[channel]))
    assert label_convention("BraTS2023").unexpected_values(np.array([0, 1, 4, 7])) == [4, 7]
    with pytest.raises(ValueError, match="brats2021"):
        label_convention("brats2020")


def test_layouts_name_files_in_channel_order():
    assert LAYOUTS["brats2023"].file_stems("C1") == ("C1-t2f", "C1-t1n", "C1-t1c", "C1-t2w")
    assert dataset_layout("brats2021").label_stem("C1") == "C1_seg"
    assert dataset_layout("msd").modality_name(Modality.T1CE) == "T1gd"
    assert Region.TC.title == "Tumour core" and Region.WT.parts[1] == "edema"
