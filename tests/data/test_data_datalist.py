"""Layout detection, datalists and case checks for the brain-tumour datasets users have."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pytest

from monai_iunet.data import (
    BROKEN_CASE_ADVICE,
    BrokenCaseError,
    build_datalist,
    case_name,
    check_case,
    detect_layout,
    drop_broken_cases,
    generate_synthetic_brats,
    screen_datalist,
)

SHAPE = (21, 19, 17)


@pytest.fixture(scope="module")
def brats_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    generate_synthetic_brats(root, num_cases=6, spatial_size=SHAPE, num_unlabeled=1)
    return root


def _copy(src, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def _labelled(datalist):
    return datalist["training"] + datalist["validation"]


def _case_file(root, case_index: int, name: str):
    case = f"SynthBraTS_{case_index:05d}"
    return root / case / f"{case}_{name}.nii.gz"


@pytest.mark.parametrize("layout", ["brats2021", "brats2023", "msd"])
def test_detect_and_build_every_layout(tmp_path, layout):
    generate_synthetic_brats(tmp_path, num_cases=5, spatial_size=SHAPE, num_unlabeled=1, layout=layout)
    assert detect_layout(tmp_path) == layout
    datalist = build_datalist(tmp_path, val_fraction=0.25)
    assert datalist["layout"] == layout
    expected = {"brats2021": (1, 2, 4), "brats2023": (1, 2, 3), "msd": (2, 1, 3)}[layout]
    assert tuple(datalist["labels"][k] for k in ("necrosis", "edema", "enhancing")) == expected
    assert len(datalist["training"]) == 3 and len(datalist["validation"]) == 1
    assert [item["case"] for item in datalist["testing"]] == ["SynthBraTS_00004"]
    assert "label" not in datalist["testing"][0]
    item = datalist["training"][0]
    if layout == "msd":
        assert item["image"].endswith(".nii.gz") and nib.load(item["image"]).shape == (*SHAPE, 4)
    else:
        # channel order FLAIR, T1, T1ce, T2 whatever the naming
        suffixes = {"brats2021": ("flair", "t1", "t1ce", "t2"), "brats2023": ("t2f", "t1n", "t1c", "t2w")}[layout]
        assert [f.rsplit("_" if layout == "brats2021" else "-", 1)[1] for f in item["image"]] == [
            f"{s}.nii.gz" for s in suffixes
        ]


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=12, spatial_size=(12, 12, 12), num_unlabeled=2)
    a = build_datalist(tmp_path, val_fraction=0.3, seed=1)
    b = build_datalist(tmp_path, val_fraction=0.3, seed=1)
    c = build_datalist(tmp_path, val_fraction=0.3, seed=2)
    cases = {key: [item["case"] for item in a[key]] for key in ("training", "validation", "testing")}
    assert cases["validation"] == [item["case"] for item in b["validation"]]
    assert cases["validation"] != [item["case"] for item in c["validation"]]
    assert len(cases["validation"]) == 3 and not set(cases["validation"]) & set(cases["training"])
    assert len(cases["training"]) + len(cases["validation"]) == 10
    assert cases["testing"] == ["SynthBraTS_00010", "SynthBraTS_00011"]


def test_msd_labels_read_from_dataset_json(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=2, spatial_size=SHAPE, layout="msd")
    description = json.loads((tmp_path / "dataset.json").read_text())
    description["labels"] = {"0": "background", "1": "enhancing tumour", "2": "edema", "3": "necrotic core"}
    (tmp_path / "dataset.json").write_text(json.dumps(description))
    assert build_datalist(tmp_path)["labels"] == {"necrosis": 3, "edema": 2, "enhancing": 1}


def test_case_name():
    assert case_name("/d/BraTS2021_00000/BraTS2021_00000_flair.nii.gz") == "BraTS2021_00000"
    assert case_name("/d/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz") == "BraTS-GLI-00000-000"
    assert case_name("/d/imagesTs/BRATS_485.nii.gz") == "BRATS_485"


def test_missing_and_empty_dataset_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; give the folder that holds your cases"):
        build_datalist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no brain-tumour cases found.*BraTS 2023.*Decathlon"):
        build_datalist(tmp_path)


def test_mixed_namings_are_rejected(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=1, spatial_size=SHAPE)
    generate_synthetic_brats(tmp_path, num_cases=1, spatial_size=SHAPE, layout="brats2023", prefix="New")
    with pytest.raises(ValueError, match="mixes BraTS 2018-2021 folders.*BraTS 2023 folders"):
        detect_layout(tmp_path)


def test_missing_modality_names_case_and_file(brats_dir, tmp_path, caplog):
    root = _copy(brats_dir, tmp_path)
    missing = _case_file(root, 2, "t1ce")
    missing.unlink()
    with pytest.raises(BrokenCaseError) as error:
        build_datalist(root)
    message = str(error.value)
    assert "case SynthBraTS_00002" in message and str(missing) in message and "missing" in message
    assert message.endswith(BROKEN_CASE_ADVICE) and "skip_broken=True" in message
    with pytest.raises(BrokenCaseError) as error:
        build_datalist(root, advice="Pass --skip_broken_cases True.")  # a bundle words the advice in its own options
    assert str(error.value).endswith("missing\nPass --skip_broken_cases True.")
    with caplog.at_level(logging.WARNING):
        datalist = build_datalist(root, skip_broken=True)
    assert "SynthBraTS_00002" not in [item["case"] for key in ("training", "validation") for item in datalist[key]]
    assert "SynthBraTS_00002" in caplog.text and "left out" in caplog.text


def test_datalist_pointing_at_missing_file(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=3, spatial_size=SHAPE, layout="msd")
    (tmp_path / "labelsTr" / "SynthBraTS_00001.nii.gz").unlink()
    with pytest.raises(
        BrokenCaseError, match=r"case SynthBraTS_00001: .*labelsTr/SynthBraTS_00001\.nii\.gz is missing"
    ):
        build_datalist(tmp_path)


def _rewrite(path, fn, dtype=None):
    img = nib.load(path)
    data = fn(np.asarray(img.dataobj).copy())
    nib.save(nib.Nifti1Image(data.astype(dtype or data.dtype), img.affine), path)


def test_header_problems_name_the_file(brats_dir, tmp_path):
    root = _copy(brats_dir, tmp_path)
    datalist = {item["case"]: item for item in screen_datalist(_labelled(build_datalist(root)))[0]}
    item = datalist["SynthBraTS_00000"]
    t2 = _case_file(root, 0, "t2")
    _rewrite(t2, lambda x: x[:-1])
    assert any(str(t2) in p and "spatial shape" in p for p in check_case(item))

    item = datalist[next(k for k in datalist if k != "SynthBraTS_00000")]
    flair = item["image"][0]
    img = nib.load(flair)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ np.diag([2.0, 1, 1, 1])), flair)
    assert any(item["image"][1] in p and "different affine" in p for p in check_case(item))


def test_data_problems_name_the_file(brats_dir, tmp_path):
    root = _copy(brats_dir, tmp_path)
    items = {item["case"]: item for item in _labelled(build_datalist(root))}
    cases = sorted(items)
    nan_file, zero_file, label_file, truncated = (
        _case_file(root, int(cases[0][-5:]), "t1"),
        _case_file(root, int(cases[1][-5:]), "flair"),
        _case_file(root, int(cases[2][-5:]), "seg"),
        _case_file(root, int(cases[3][-5:]), "t2"),
    )
    _rewrite(nan_file, lambda x: np.where(x > x.max() / 2, np.nan, x))
    _rewrite(zero_file, np.zeros_like)
    _rewrite(label_file, lambda x: np.where(x == 4, 7, x))
    truncated.write_bytes(gzip.compress(gzip.decompress(truncated.read_bytes())[:-500])[:-100])

    assert check_case(items[cases[0]]) == []  # headers alone are fine
    problems = {case: check_case(items[case], read_data=True, label_values=(1, 2, 4)) for case in cases}
    assert str(nan_file) in problems[cases[0]][0] and "NaN/Inf" in problems[cases[0]][0]
    assert str(zero_file) in problems[cases[1]][0] and "all zero" in problems[cases[1]][0]
    assert str(label_file) in problems[cases[2]][0] and "unexpected label values [7]" in problems[cases[2]][0]
    assert str(truncated) in problems[cases[3]][0] and "truncated or corrupt" in problems[cases[3]][0]

    with pytest.raises(BrokenCaseError) as error:
        drop_broken_cases(list(items.values()), read_data=True, label_values=(1, 2, 4), where="the validation set")
    assert "4 broken case(s) in the validation set" in str(error.value)  # the fifth case is intact
    kept = drop_broken_cases(list(items.values()), skip_broken=True, read_data=True, label_values=(1, 2, 4))
    assert [item["case"] for item in kept] == [cases[4]]


def test_wrong_number_of_modalities(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=2, spatial_size=SHAPE, layout="msd")
    image = tmp_path / "imagesTr" / "SynthBraTS_00000.nii.gz"
    _rewrite(image, lambda x: x[..., :3])
    with pytest.raises(BrokenCaseError, match=r"shape \(21, 19, 17, 3\); expected a 4D image with 4 modalities"):
        build_datalist(tmp_path)


def test_network_channels_must_match_the_modalities(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=2, spatial_size=SHAPE)
    with pytest.raises(BrokenCaseError, match=r"4 modality files but the network takes 3 input channels"):
        build_datalist(tmp_path, num_channels=3, skip_broken=True)  # no case left: an error even when skipping


def test_training_needs_two_labelled_cases(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=3, spatial_size=SHAPE, num_unlabeled=2)
    assert len(build_datalist(tmp_path)["testing"]) == 2  # fine for inference
    with pytest.raises(ValueError, match="1 usable labelled case.*at least 2"):
        build_datalist(tmp_path, min_labelled=2)
