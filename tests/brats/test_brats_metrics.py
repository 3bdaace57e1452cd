"""The per-region metric table of the BraTS bundle."""

from __future__ import annotations

from monai_iunet.brats.metrics import format_brats_metrics


def test_format_brats_metrics():
    metrics = {
        "val_mean_dice": 0.8,
        "val_dice_tc": 0.7,
        "val_dice_wt": 0.9,
        "val_dice_et": 0.8,
        "val_sensitivity_tc": 0.6,
        "val_sensitivity_wt": 0.9,
        "val_sensitivity_et": 0.9,
    }
    rows = format_brats_metrics(metrics).splitlines()
    assert rows[0].split() == ["region", "Dice", "sensitivity"]
    assert rows[1].split() == ["TC", "0.7000", "0.6000"]
    assert rows[4].split() == ["mean", "0.8000", "0.8000"]
    assert format_brats_metrics({}).splitlines()[2].split() == ["WT", "-", "-"]
