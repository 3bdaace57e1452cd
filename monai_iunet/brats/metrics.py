"""Dice and sensitivity per tumour region (TC, WT, ET) for the bundles' handlers and reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monai_iunet.brats.labels import REGION_ORDER

__all__ = ["format_brats_metrics"]


def format_brats_metrics(metrics: Mapping[str, Any], prefix: str = "val_") -> str:
    """A table of Dice and sensitivity per region from an engine's metrics.

    Reads ``<prefix>dice_<region>`` and ``<prefix>sensitivity_<region>`` for the regions TC, WT, ET and
    ``<prefix>mean_dice``; a missing metric is shown as ``-``.
    """

    def cell(name: str) -> str:
        value = metrics.get(f"{prefix}{name}")
        return "-" if value is None else f"{float(value):.4f}"

    rows = [f"{'region':<8}{'Dice':>10}{'sensitivity':>14}"]
    rows += [
        f"{region.name:<8}{cell(f'dice_{region}'):>10}{cell(f'sensitivity_{region}'):>14}" for region in REGION_ORDER
    ]
    sensitivities = [metrics.get(f"{prefix}sensitivity_{region}") for region in REGION_ORDER]
    mean_sensitivity = (
        f"{sum(float(s) for s in sensitivities) / len(REGION_ORDER):.4f}" if None not in sensitivities else "-"
    )
    rows.append(f"{'mean':<8}{cell('mean_dice'):>10}{mean_sensitivity:>14}")
    return "\n".join(rows)
