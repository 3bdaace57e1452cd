"""Dice and sensitivity per tumour region (TC, WT, ET) for the bundles' handlers and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.metrics import compute_confusion_matrix_metric

from monai_iunet.brats.labels import REGION_ORDER

__all__ = ["ConfusionDetailsToMetric", "format_brats_metrics", "print_brats_metrics"]


class ConfusionDetailsToMetric:
    """Turn the per-case confusion matrices kept by MONAI's ``ConfusionMatrix`` handlers into per-case values.

    The handlers store ``(cases, channels, 4)`` counts in ``engine.state.metric_details``; ``MetricsSaver`` needs
    ``(cases, channels)`` values to write a per-case CSV. Attach this before ``MetricsSaver``.

    Args:
        names: the metric names whose details to convert (e.g. ``["val_sensitivity_tc", ...]``).
        metric_name: the confusion-matrix metric to compute, as in ``ConfusionMatrix(metric_name=...)``.
    """

    def __init__(self, names: Sequence[str], metric_name: str = "sensitivity") -> None:
        self.names = list(names)
        self.metric_name = metric_name

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        details = engine.state.metric_details
        for name in self.names:
            counts = details.get(name)
            if isinstance(counts, torch.Tensor) and counts.shape[-1] == 4:
                details[name] = compute_confusion_matrix_metric(self.metric_name, counts)


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


def print_brats_metrics(metrics: Mapping[str, Any], prefix: str = "val_") -> str:
    """Print :func:`format_brats_metrics` of ``metrics`` (e.g. ``evaluator.state.metrics``) and return it."""
    table = format_brats_metrics(metrics, prefix)
    print(table, flush=True)
    return table
