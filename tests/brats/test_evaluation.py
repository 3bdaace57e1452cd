"""The evaluator: metrics per case and region on label maps, empty-region conventions, lesion-wise rules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import HausdorffDistanceMetric, SurfaceDiceMetric

from monai_iunet.brats import (
    BRATS2021,
    BRATS2023,
    EMPTY_HD95_MM,
    LESION_HD95_PENALTY_MM,
    METRICS,
    LabelValueError,
    LesionRule,
    convert_labels,
    evaluate_labels,
    lesion_metrics,
    region_metrics,
)
from monai_iunet.transforms import ConvertBratsChannelsToLabels


def _cube(shape, start, size, value=1, out=None):
    out = np.zeros(shape, np.uint8) if out is None else out
    out[tuple(slice(s, s + size) for s in start)] = value
    return out


def _by_region(rows):
    return {r["region"]: r for r in rows}


def test_rows_columns_and_region_order():
    ref = _cube((24, 24, 24), (4, 4, 4), 10, BRATS2023.edema)
    _cube((24, 24, 24), (6, 6, 6), 5, BRATS2023.enhancing, out=ref)
    rows = evaluate_labels(ref, ref, "brats2023", case="c1")
    assert [r["region"] for r in rows] == ["et", "tc", "wt"]
    for row in rows:
        assert list(row)[:2] == ["case", "region"] and row["case"] == "c1"
        assert all(name in row for name in METRICS)
        assert row["dice"] == pytest.approx(1.0) and row["hd95"] == 0.0 and row["nsd"] == pytest.approx(1.0)
        assert row["lesion_tp"] == 1 and row["lesion_fp"] == row["lesion_fn"] == 0


def test_empty_region_conventions():
    shape = (20, 20, 20)
    blob = _cube(shape, (5, 5, 5), 6).astype(bool)
    empty = np.zeros(shape, bool)
    both = region_metrics(empty, empty)
    assert (both["dice"], both["hd95"], both["nsd"], both["sensitivity"], both["specificity"]) == (1, 0, 1, 1, 1)
    assert (both["lesionwise_dice"], both["lesionwise_hd95"]) == (1.0, 0.0)
    fp = region_metrics(blob, empty)  # a false positive on an empty reference costs: nothing is NaN or dropped
    assert (fp["dice"], fp["hd95"], fp["nsd"], fp["sensitivity"]) == (0, EMPTY_HD95_MM, 0, 1)
    assert fp["specificity"] == pytest.approx(1 - 216 / 8000)
    assert (fp["lesionwise_dice"], fp["lesionwise_hd95"], fp["lesion_fp"]) == (0, LESION_HD95_PENALTY_MM, 1)
    fn = region_metrics(empty, blob)
    assert (fn["dice"], fn["hd95"], fn["nsd"], fn["sensitivity"], fn["specificity"]) == (0, EMPTY_HD95_MM, 0, 0, 1)
    assert (fn["lesionwise_dice"], fn["lesionwise_hd95"], fn["lesion_fn"]) == (0, LESION_HD95_PENALTY_MM, 1)


def test_hd95_in_mm_pools_both_directions_and_nsd_is_monais():
    shape = (30, 30, 30)
    ref = _cube(shape, (8, 8, 8), 8).astype(bool)
    pred = ref.copy()
    pred[8:16, 8:16, 16:19] = True  # grown by 3 voxels along the last axis
    iso = region_metrics(pred, ref)
    aniso = region_metrics(pred, ref, spacing=(1.0, 1.0, 2.0))
    assert 0 < iso["hd95"] < aniso["hd95"] <= 2 * iso["hd95"] + 1e-6
    # MONAI's HausdorffDistanceMetric takes the larger directed percentile: never below the pooled one
    p, r = torch.as_tensor(pred[None, None] * 1.0), torch.as_tensor(ref[None, None] * 1.0)
    assert float(HausdorffDistanceMetric(include_background=True, percentile=95)(p, r)) >= iso["hd95"]
    nsd = SurfaceDiceMetric([1.0], include_background=True)(p, r)
    assert iso["nsd"] == pytest.approx(float(nsd))


def test_label_map_nesting_is_scored_not_channels():
    # channels where ET lies outside TC: the written label map nests ET into TC and WT
    channels = np.zeros((3, 20, 20, 20), np.uint8)
    channels[1, 2:12, 2:12, 2:12] = 1  # WT
    channels[0, 4:8, 4:8, 4:8] = 1  # TC
    channels[2, 12:16, 12:16, 12:16] = 1  # ET, outside TC and WT
    label = np.asarray(ConvertBratsChannelsToLabels(label_convention="brats2021")(channels))[0]
    rows = _by_region(evaluate_labels(label, label, "brats2021"))
    assert rows["tc"]["dice"] == pytest.approx(1.0)
    tc_from_label = BRATS2021.region_masks(label)[next(r for r in BRATS2021.region_masks(label) if r.value == "tc")]
    assert tc_from_label.sum() == 64 + 64  # TC channel ∪ ET channel


def test_out_of_convention_value_names_case_and_value():
    label = _cube((10, 10, 10), (2, 2, 2), 4, 4)  # BraTS 2021 enhancing = 4
    with pytest.raises(LabelValueError, match=r"case BraTS-1: the prediction has label value\(s\) \[4\]"):
        evaluate_labels(label, np.zeros_like(label), "brats2023", case="BraTS-1")
    assert evaluate_labels(convert_labels(label, "brats2021", "brats2023"), label * 0, "brats2023")


def test_lesions_split_merged_small_ignored_and_distant_fp():
    shape = (48, 48, 48)
    ref = _cube(shape, (5, 5, 5), 10).astype(bool)
    _cube(shape, (30, 30, 30), 3, out=ref.view(np.uint8))  # 27 voxels: below the minimum size of 50
    pred = np.zeros(shape, bool)
    pred[5:15, 5:15, 5:9] = pred[5:15, 5:15, 11:15] = True  # the big lesion split in two pieces
    pred[38:44, 38:44, 38:44] = True  # a distant false positive (216 voxels)
    pred[2:4, 40:42, 2:4] = True  # a tiny false positive (8 voxels): ignored
    m = lesion_metrics(pred, ref)
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (1, 1, 0)
    split_dice = 2 * 800 / (1000 + 800)
    assert m["lesionwise_dice"] == pytest.approx(split_dice / 2, abs=1e-6)
    assert m["lesionwise_hd95"] > LESION_HD95_PENALTY_MM / 2
    # without the dilation the two pieces are still matched (they overlap the lesion); a 3-voxel gap is bridged
    near = np.zeros(shape, bool)
    near[5:15, 5:15, 17:19] = True  # 2 voxels beyond the lesion: a TP with dilation 3, a FP+FN without
    assert lesion_metrics(near, ref, rule=LesionRule(3, 50))["lesion_tp"] == 1
    strict = lesion_metrics(near, ref, rule=LesionRule(0, 50))
    assert (strict["lesion_tp"], strict["lesion_fp"], strict["lesion_fn"]) == (0, 1, 1)
    assert lesion_metrics(pred, ref, rule=LesionRule(3, 1))["lesion_fn"] == 1  # the small lesion counts with min 1


def test_scoring_prints_no_deprecation_warning_of_monai_internals():
    """MONAI 1.5-1.6's surface distances warn about an argument MONAI itself passes: not the user's to fix."""
    ref = _cube((20, 20, 20), (4, 4, 4), 8, BRATS2023.edema)
    pred = _cube((20, 20, 20), (5, 4, 4), 8, BRATS2023.edema)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        rows = evaluate_labels(pred, ref, "brats2023", case="c1")
    assert _by_region(rows)["wt"]["hd95"] == pytest.approx(1.0)
