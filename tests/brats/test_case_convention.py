"""One datastore, one convention: inference writes each case as training reads it; a foreign label is an error."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_iunet.brats import BRATS2021, BRATS2023, MSD
from monai_iunet.brats.case_convention import case_label_convention, check_label_convention
from monai_iunet.brats.datalist_convention import detect_label_convention
from monai_iunet.data import CaseDataset, generate_synthetic_brats
from monai_iunet.errors import LabelConventionError
from monai_iunet.transforms import CheckCased, ConvertBratsChannelsToLabelsd, Spacingd


def _items(root, layout: str) -> list[dict]:
    generate_synthetic_brats(root, num_cases=1, spatial_size=(12, 12, 12), layout=layout)
    if layout == "msd":
        image = next((root / "imagesTr").glob("*.nii.gz"))
        return [{"image": str(image), "label": str(root / "labelsTr" / image.name)}]
    case = next(p for p in root.iterdir() if p.is_dir())
    files = sorted(case.glob("*.nii.gz"))
    label = next(f for f in files if "seg" in f.name)
    order = ("flair", "t1.", "t1ce", "t2.") if layout == "brats2021" else ("t2f", "t1n", "t1c", "t2w")
    return [{"image": [str(next(f for f in files if o in f.name)) for o in order], "label": str(label)}]


@pytest.mark.parametrize("layout, convention", [("msd", MSD), ("brats2021", BRATS2021), ("brats2023", BRATS2023)])
def test_inference_writes_what_training_reads(tmp_path, layout, convention):
    items = _items(tmp_path / layout, layout)
    assert detect_label_convention(items) == convention.name  # training's reading
    image = LoadImaged("image", image_only=True, ensure_channel_first=True)(items[0])["image"]
    assert case_label_convention(image) == convention  # inference's writing
    channels = torch.zeros(3, 2, 2, 2)
    channels[1] = 1  # whole tumour: edema everywhere
    channels[0, 0] = 1  # tumour core
    channels[2, 0, 0] = 1  # enhancing
    out = ConvertBratsChannelsToLabelsd("pred", label_convention="auto")({"pred": channels, "image": image})["pred"]
    assert set(torch.unique(out).tolist()) == {convention.edema, convention.necrosis, convention.enhancing}


def test_in_memory_image_is_written_with_consecutive_labels():
    """MONAI Deploy hands arrays without file names: the msd values 1, 2, 3, which DICOM-SEG writers accept."""
    assert case_label_convention(torch.zeros(4, 2, 2, 2)) == MSD
    assert case_label_convention(MetaTensor(torch.zeros(4, 2, 2, 2))) == MSD


def test_a_label_in_the_other_convention_names_the_file_and_both(tmp_path):
    (item,) = _items(tmp_path, "msd")
    label = nib.load(item["label"])
    data = np.asarray(label.dataobj).astype(np.uint8)
    data[data == 3] = 4  # a prediction written in brats2021 values, saved as a label in the 4D datastore
    nib.save(nib.Nifti1Image(data, label.affine), item["label"])
    with pytest.raises(LabelConventionError, match=r"brats2021 \(1 necrosis, 2 edema, 4 enhancing\).*msd \(2 necrosis"):
        check_label_convention(data, list(MSD.values), item["label"])
    transform = [
        LoadImaged(["image", "label"], image_only=True, ensure_channel_first=True),
        CheckCased(label_values=list(MSD.values)),
    ]
    dataset = CaseDataset([item], transform=transform, skip_broken=True, label_values=list(MSD.values), cache_rate=0)
    with pytest.raises(LabelConventionError, match=item["label"]):
        dataset[0]  # an error, not a broken case skipped with a warning


def test_broken_label_values_are_not_a_convention_error():
    check_label_convention(np.array([0, 1, 7]), list(MSD.values), "x.nii.gz")  # left to the case checks


def test_spacingd_leaves_monai_label_image_path_alone(tmp_path):
    """MONAI Label adds an ``image_path`` string; MONAI 1.6's Spacingd calls .update() on every 'image_*' entry."""
    (item,) = _items(tmp_path, "msd")
    data = LoadImaged("image", image_only=False, ensure_channel_first=True)({"image": item["image"]})
    data["image_path"] = item["image"]
    out = Spacingd("image", pixdim=(2.0, 2.0, 2.0))(data)
    assert out["image_path"] == item["image"]
    assert tuple(out["image"].shape[1:]) == (6, 6, 6)
    assert out["image_meta_dict"]["spatial_shape"] is not None
