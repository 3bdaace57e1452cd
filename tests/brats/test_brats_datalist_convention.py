"""The label convention of a datalist, named or recognised from its file names with the layouts' naming."""

from __future__ import annotations

import pytest

from monai_iunet.brats import BRATS2021_LAYOUT, BRATS2023_LAYOUT, CONVENTIONS
from monai_iunet.brats.datalist_convention import detect_label_convention, label_values
from monai_iunet.errors import UserInputError


def _item(layout, case="Case_0"):
    return {
        "image": [f"data/{case}/{stem}.nii.gz" for stem in layout.file_stems(case)],
        "label": f"data/{case}/{layout.label_stem(case)}.nii.gz",
    }


@pytest.mark.parametrize(
    "items, expected",
    [
        ([_item(BRATS2021_LAYOUT)], "brats2021"),
        ([_item(BRATS2023_LAYOUT, "BraTS-GLI-00000-000")], "brats2023"),
        ([{"image": _item(BRATS2023_LAYOUT)["image"]}], "brats2023"),  # unlabelled, named as 2023
        ([{"image": "imagesTr/BRATS_001.nii.gz", "label": "labelsTr/BRATS_001.nii.gz"}], "msd"),
        ([{"image": ["a.nii", "b.nii", "c.nii", "d.nii"]}], "brats2021"),  # no known naming: the default
        ([], "brats2021"),
    ],
)
def test_convention_is_recognised_from_file_names(items, expected):
    assert detect_label_convention(items) == expected
    assert label_values("auto", items) == list(CONVENTIONS[expected].values)


def test_named_convention_and_a_wrong_name():
    assert label_values("BraTS2023") == [1, 2, 3]
    assert label_values("msd", [_item(BRATS2021_LAYOUT)]) == [2, 1, 3]  # a named convention wins over the items
    with pytest.raises(UserInputError, match="'auto' or one of .*brats2023"):
        label_values("brats2019")
