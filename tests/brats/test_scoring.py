"""``monai-iunet evaluate``: case matching by case id, the long-format CSV, the summary and the refusals."""

from __future__ import annotations

import csv
import re

import nibabel as nib
import numpy as np
import pytest

from monai_iunet.brats.scoring import CSV_COLUMNS, case_id, label_files, match_cases, summarize
from monai_iunet.cli import main
from monai_iunet.errors import UserInputError
from monai_iunet.progress import PROGRESS_ENV


def _save(path, label, spacing=(1.0, 1.0, 1.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(label.astype(np.uint8), np.diag([*spacing, 1.0])), path)


def _label(et=True, shift=0):
    label = np.zeros((24, 24, 24), np.uint8)
    label[4 + shift : 16 + shift, 4:16, 4:16] = 2
    label[7 + shift : 13 + shift, 7:13, 7:13] = 4 if et else 1
    label[9 + shift : 11 + shift, 9:11, 9:11] = 1
    return label


def test_case_ids_of_every_naming():
    assert case_id("a/BraTS2021_00001/BraTS2021_00001_seg.nii.gz") == "BraTS2021_00001"
    assert case_id("BraTS-GLI-00002-000-seg.nii.gz") == case_id("BraTS-GLI-00002-000.nii.gz") == "BraTS-GLI-00002-000"
    assert case_id("labelsTr/BRATS_003.nii") == "BRATS_003"


def test_reference_folder_in_brats_layout_ignores_modalities(tmp_path):
    for case in ("C1", "C2"):
        _save(tmp_path / case / f"{case}_seg.nii.gz", _label())
        _save(tmp_path / case / f"{case}_flair.nii.gz", _label())
    assert sorted(label_files(tmp_path)) == ["C1", "C2"]


def test_missing_predictions_are_listed(tmp_path):
    _save(tmp_path / "ref" / "C1_seg.nii.gz", _label())
    _save(tmp_path / "ref" / "C2_seg.nii.gz", _label())
    _save(tmp_path / "pred" / "C1.nii.gz", _label())
    with pytest.raises(UserInputError, match=r"1 of 2 reference case\(s\) have no prediction .*C2"):
        match_cases(tmp_path / "pred", tmp_path / "ref")


def test_evaluate_writes_long_csv_summary_and_table(tmp_path, capsys, monkeypatch):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    _save(ref / "C1" / "C1_seg.nii.gz", _label())
    _save(pred / "C1_seg.nii.gz", _label(shift=1))
    _save(ref / "C2" / "C2_seg.nii.gz", _label(et=False))  # no ET in the reference ...
    _save(pred / "C2.nii.gz", _label(et=False))  # ... nor in the prediction: both empty
    out = tmp_path / "scores" / "metrics.csv"
    assert (
        main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--convention", "brats2021", "--output", str(out)])
        == 0
    )
    with open(out) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert [(r["case"], r["region"]) for r in rows] == [(c, r) for c in ("C1", "C2") for r in ("et", "tc", "wt")]
    assert float(rows[3]["dice"]) == 1.0 and float(rows[3]["hd95"]) == 0.0  # C2 ET, both empty
    assert 0.5 < float(rows[0]["dice"]) < 1.0 and float(rows[0]["hd95"]) > 0
    with open(out.with_name("metrics_summary.csv")) as f:
        summary = {(r["region"], r["metric"]): r for r in csv.DictReader(f)}
    et = summary[("et", "dice")]
    assert float(et["mean"]) == pytest.approx((float(rows[0]["dice"]) + 1.0) / 2, abs=1e-5)
    assert (et["cases"], et["empty_reference"], et["empty_both"]) == ("2", "1", "1")
    printed, stderr = capsys.readouterr()
    assert (
        "2 case(s), brats2021 labels" in printed and "1 empty ref, 1 both" in printed and "lesionwise_hd95" in printed
    )
    assert stderr == ""  # stderr is no terminal here: no progress bar
    monkeypatch.setenv(PROGRESS_ENV, "on")
    main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--convention", "brats2021", "--output", str(out)])
    assert re.search(r"evaluate: .*2/2 \[\d\d:\d\d<\d\d:\d\d", capsys.readouterr().err)  # a bar over the cases


def test_evaluate_refuses_a_value_outside_the_convention(tmp_path, capsys):
    _save(tmp_path / "ref" / "C7-seg.nii.gz", _label())
    _save(tmp_path / "pred" / "C7.nii.gz", _label())
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--convention", "brats2023"]
    assert main([*args, "--output", str(tmp_path / "m.csv")]) == 2
    assert "case C7: the prediction has label value(s) [4]" in capsys.readouterr().err


def test_evaluate_refuses_a_prediction_on_another_grid(tmp_path):
    from monai_iunet.brats.scoring import evaluate_folders

    _save(tmp_path / "ref" / "C1_seg.nii.gz", _label(), spacing=(1.0, 1.0, 1.5))
    _save(tmp_path / "pred" / "C1.nii.gz", _label())
    with pytest.raises(UserInputError, match="case C1: the prediction .* is not on the reference's grid"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", "brats2021")


def test_summary_counts_every_case_in_every_mean():
    rows = [
        {"case": "a", "region": "et", "reference_empty": True, "prediction_empty": False}
        | {m: 0.0 for m in CSV_COLUMNS[2:]},
        {"case": "b", "region": "et", "reference_empty": False, "prediction_empty": False}
        | {m: 1.0 for m in CSV_COLUMNS[2:]},
    ]
    dice = next(s for s in summarize(rows) if s["metric"] == "dice")
    assert (dice["mean"], dice["median"], dice["cases"], dice["empty_reference"], dice["empty_both"]) == (
        0.5,
        0.5,
        2,
        1,
        0,
    )
    assert dice["sd"] == pytest.approx(np.std([0.0, 1.0], ddof=1))
