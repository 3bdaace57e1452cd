"""Agreement with the official BraTS scorer (``brats-evaluation`` 0.0.10, ``config gli``) on crafted cases.

The official package is AGPL and changes numpy in the shared environment, so it is not a dependency: it lives in its
own virtual environment (``scripts/install_tests.sh`` makes it at ``$BRATS_EVALUATION_VENV``, default
``/work/venvs/evaluator``) and is run as a program, the way participants run it. The deliberate differences, each
asserted below (and listed in docs/evaluation.md):

- both empty: the official package leaves Dice and HD95 empty (NaN, skipped by its means); we score Dice 1, HD95 0;
- HD95 and NSD: the official package ignores the voxel spacing (distances in voxels); ours are in mm;
- lesion-wise: the official package matches lesions one to one without dilation or minimum size and averages Dice
  over matched lesions only; we apply the BraTS 2023 rules (a split prediction is one TP, FN/FP count as 0).
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_iunet.brats import BRATS2023
from monai_iunet.brats.scoring import evaluate_folders
from monai_iunet.transforms import ConvertBratsChannelsToLabels

VENV = Path(os.environ.get("BRATS_EVALUATION_VENV", "/work/venvs/evaluator"))
SHAPE = (40, 40, 40)
NEC, ED, ET = BRATS2023.necrosis, BRATS2023.edema, BRATS2023.enhancing


def _tumour(shift=(0, 0, 0), enhancing=True) -> np.ndarray:
    """Edema 14³ around a necrotic core 6³ with an enhancing rim (BraTS 2023 labels)."""
    label = np.zeros(SHAPE, np.uint8)
    lo = np.array([8, 8, 8]) + shift
    label[tuple(slice(a, a + 14) for a in lo)] = ED
    label[tuple(slice(a + 3, a + 11) for a in lo)] = ET if enhancing else NEC
    label[tuple(slice(a + 4, a + 10) for a in lo)] = NEC
    return label


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """``case -> (prediction, reference, spacing)`` for every situation the issue names."""
    iso = (1.0, 1.0, 1.0)
    no_et = _tumour(enhancing=False)
    fp_et = _tumour((1, 0, 0), enhancing=False)
    fp_et[30:35, 30:35, 30:35] = ET
    small_ref = _tumour()
    small_ref[30:34, 30:34, 30:34] = ET  # a 64-voxel lesion (above the minimum size of 50), missed
    split = _tumour((0, 1, 0))
    split[:, :, 15:17] = 0  # a 2-voxel cut: the prediction falls into two components
    channels = np.zeros((3, *SHAPE), np.uint8)
    channels[1, 8:22, 8:22, 8:22] = 1  # WT
    channels[0, 12:18, 12:18, 12:18] = 1  # TC
    channels[2, 11:20, 11:20, 11:20] = 1  # ET reaches beyond TC: the label map nests it into TC
    nested = np.asarray(ConvertBratsChannelsToLabels(label_convention="brats2023")(channels))[0]
    return {
        "BraTS-GLI-00001-000": (_tumour((1, 1, 0), enhancing=False), no_et, iso),  # both-empty ET
        "BraTS-GLI-00002-000": (fp_et, no_et, iso),  # false-positive ET on an empty reference
        "BraTS-GLI-00003-000": (_tumour((1, 0, 0)), small_ref, iso),  # missed small lesion
        "BraTS-GLI-00004-000": (split, _tumour(), iso),  # split lesion
        "BraTS-GLI-00005-000": (nested, _tumour(), iso),  # nested regions that disagree with the channels
        "BraTS-GLI-00006-000": (_tumour((0, 0, 2)), _tumour(), (1.0, 1.0, 2.5)),  # anisotropic grid
    }


def _write(cases, root: Path) -> tuple[Path, Path]:
    pred_dir, ref_dir = root / "pred", root / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for case, (pred, ref, spacing) in cases.items():
        affine = np.diag([*spacing, 1.0])
        nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), pred_dir / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(ref.astype(np.uint8), affine), ref_dir / f"{case}-seg.nii.gz")
    return pred_dir, ref_dir


def _official(pred_dir: Path, ref_dir: Path, out: Path) -> dict[str, dict[str, float]]:
    """Run ``brats-evaluate --config gli`` and ``brats-parse-metrics seg``; their CSV by case id."""
    summary, table = out / "summary.json", out / "official.csv"
    run = dict(check=True, capture_output=True, text=True, timeout=600)
    subprocess.run(
        [VENV / "bin" / "brats-evaluate", "--config", "gli", "--ref_path", ref_dir, "--pred_path", pred_dir,
         "--summary_json", summary], **run,
    )  # fmt: skip
    subprocess.run(
        [VENV / "bin" / "brats-parse-metrics", "seg", "--json_path", summary, "--output_csv_path", table], **run
    )
    with open(table) as f:
        rows = list(csv.DictReader(f))
    return {
        r["subject_id"].replace("-seg.nii.gz", ""): {
            k: float(v) if v else math.nan for k, v in r.items() if k != "subject_id"
        }
        for r in rows
        if r["subject_id"].startswith("BraTS")
    }


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    if not (VENV / "bin" / "brats-evaluate").exists():
        pytest.skip(f"the official scorer is not installed in {VENV}: run scripts/install_tests.sh")
    root = tmp_path_factory.mktemp("agreement")
    cases = _cases()
    pred_dir, ref_dir = _write(cases, root)
    ours = {(r["case"], r["region"]): r for r in evaluate_folders(pred_dir, ref_dir, "brats2023")}
    return cases, ours, _official(pred_dir, ref_dir, root)


def test_dice_agrees_per_case_and_region(scores):
    cases, ours, official = scores
    for case in cases:
        for region in ("et", "tc", "wt"):
            theirs, mine = official[case][f"global_dsc_{region}"], ours[(case, region)]["dice"]
            if math.isnan(theirs):  # both empty: official leaves it out, we score 1
                assert ours[(case, region)]["reference_empty"] and ours[(case, region)]["prediction_empty"]
                assert mine == 1.0, (case, region)
            else:
                assert mine == pytest.approx(theirs, abs=1e-6), (case, region)
    assert math.isnan(official["BraTS-GLI-00001-000"]["global_dsc_et"])  # the both-empty case is one
    assert official["BraTS-GLI-00002-000"]["global_dsc_et"] == ours[("BraTS-GLI-00002-000", "et")]["dice"] == 0.0


def test_hd95_agrees_per_case_and_region(scores):
    cases, ours, official = scores
    for case, (_, _, spacing) in cases.items():
        for region in ("et", "tc", "wt"):
            theirs, mine = official[case][f"global_hd95_{region}"], ours[(case, region)]["hd95"]
            if math.isnan(theirs):
                assert mine == 0.0
            elif spacing == (1.0, 1.0, 1.0):
                assert mine == pytest.approx(theirs, abs=0.01), (case, region)
            else:  # the official distances are in voxels: ours in mm are larger along the 2.5 mm axis
                assert mine > theirs + 1.0, (case, region)
    assert official["BraTS-GLI-00002-000"]["global_hd95_et"] == ours[("BraTS-GLI-00002-000", "et")]["hd95"] == 373.0


def test_anisotropic_case_agrees_in_voxel_units(scores, tmp_path):
    cases, _, official = scores
    case = "BraTS-GLI-00006-000"
    pred, ref, _ = cases[case]
    pred_dir, ref_dir = _write({case: (pred, ref, (1.0, 1.0, 1.0))}, tmp_path)
    in_voxels = {r["region"]: r for r in evaluate_folders(pred_dir, ref_dir, "brats2023")}
    for region in ("et", "tc", "wt"):
        assert in_voxels[region]["hd95"] == pytest.approx(official[case][f"global_hd95_{region}"], abs=0.01)


def test_lesion_counts_agree_except_split_lesions(scores):
    cases, ours, official = scores
    for case in cases:
        for region in ("et", "tc", "wt"):
            mine = ours[(case, region)]
            counts = tuple(official[case][f"all_instance_{k}_{region}"] for k in ("tp", "fp", "fn"))
            if case == "BraTS-GLI-00004-000":  # split: BraTS 2023 merges the pieces, the official one-to-one FP
                assert (mine["lesion_tp"], mine["lesion_fp"], mine["lesion_fn"]) == (1, 0, 0)
                assert counts == (1, 1, 0)
            else:
                assert (mine["lesion_tp"], mine["lesion_fp"], mine["lesion_fn"]) == counts, (case, region)
    assert ours[("BraTS-GLI-00003-000", "et")]["lesion_fn"] == 1  # the missed small lesion


def test_lesionwise_dice_is_official_mean_over_matched_lesions_rescaled(scores):
    cases, ours, official = scores
    for case in cases:
        if case == "BraTS-GLI-00004-000":
            continue
        for region in ("et", "tc", "wt"):
            mine = ours[(case, region)]
            if mine["lesion_tp"]:
                total = mine["lesion_tp"] + mine["lesion_fp"] + mine["lesion_fn"]
                rescaled = mine["lesionwise_dice"] * total / mine["lesion_tp"]
                assert rescaled == pytest.approx(official[case][f"lesionwise_dsc_mean_{region}"], abs=1e-6)
