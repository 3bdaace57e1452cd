"""The evaluator in a bundle's validation: a metric on the label maps inference writes, and its CSV writer.

:class:`LabelMapMetric` is an ignite metric for MONAI's ``SupervisedEvaluator``: each validation case's
prediction arrives as the label map inference writes (channels thresholded, nested into labels, inverted onto the
case's original grid by ``Invertd``), and is scored with :func:`~monai_iunet.brats.evaluate_labels` against the
reference label file itself, read from disk on its own grid. Its value is the mean Dice over cases and regions (every
case counts in every region); the per-region means go into ``engine.state.metrics`` as ``<prefix><metric>_<region>``.
:class:`EvaluationWriter` writes the rows as ``monai-iunet evaluate`` does (``metrics.csv`` and
``metrics_summary.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.metrics import Metric

from monai_iunet.brats.evaluation import NSD_TOLERANCE_MM, evaluate_labels
from monai_iunet.brats.labels import LabelConvention
from monai_iunet.brats.scoring import SUMMARY_COLUMNS, summarize, write_csv
from monai_iunet.errors import UserInputError

__all__ = ["STATE_METRICS", "EvaluationWriter", "LabelMapMetric"]

STATE_METRICS: tuple[str, ...] = ("dice", "sensitivity", "hd95")
"""The metrics whose per-region means :class:`LabelMapMetric` puts into ``engine.state.metrics`` (all are in the
CSV)."""


def _pairs(output: Any) -> tuple[Sequence, Sequence]:
    preds, labels = output
    return (preds, labels) if isinstance(preds, (list, tuple)) else ([preds], [labels])


class LabelMapMetric(Metric):
    """Score each validation case's predicted label map against its reference label file, on the file's grid.

    Args:
        label_values: values of necrosis, edema and enhancing tumour in both maps (the bundle's ``label_values``).
        prefix: prefix of the names put into ``engine.state.metrics`` (``val_`` gives ``val_dice_tc``, ...).
        nsd_tolerance: NSD tolerance in mm.
        output_transform: gives ``(preds, labels)`` from the engine output, one item per case: the predicted label
            map ``(1, D, H, W)`` on the original grid and the transformed label whose ``meta["filename_or_obj"]``
            is the reference file.
    """

    def __init__(
        self,
        label_values: Sequence[int],
        prefix: str = "val_",
        nsd_tolerance: float = NSD_TOLERANCE_MM,
        output_transform: Callable = lambda x: x,
    ) -> None:
        self.convention = LabelConvention("dataset", *(int(v) for v in label_values))
        self.prefix = prefix
        self.nsd_tolerance = nsd_tolerance
        self.rows: list[dict] = []
        super().__init__(output_transform=output_transform)

    def reset(self) -> None:
        self.rows = []

    def update(self, output: Any) -> None:
        from monai_iunet.data import case_name

        for pred, label in zip(*_pairs(output)):
            path = label.meta["filename_or_obj"]
            reference = nib.load(path)
            ref = np.asanyarray(reference.dataobj)
            pred = np.squeeze(torch.as_tensor(pred).detach().cpu().numpy()).astype(np.uint8)
            if pred.shape != ref.shape:
                raise UserInputError(
                    f"case {case_name(path)}: the predicted label map {pred.shape} is not on the grid of its reference "
                    f"{path} {ref.shape}; the validation postprocessing must invert the preprocessing (Invertd)."
                )
            spacing = tuple(float(z) for z in reference.header.get_zooms()[:3])
            self.rows += evaluate_labels(pred, ref, self.convention, spacing, case_name(path), self.nsd_tolerance)

    def _all_rows(self) -> list[dict]:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[list[dict]] = [[] for _ in range(dist.get_world_size())]
            dist.all_gather_object(gathered, self.rows)
            return [row for rows in gathered for row in rows]
        return self.rows

    def compute(self) -> float:
        self.rows = self._all_rows()
        if not self.rows:
            raise UserInputError("the validation has no case to score; give labelled validation cases.")
        return float(np.mean([row["dice"] for row in self.rows]))

    def completed(self, engine: Engine, name: str) -> None:
        super().completed(engine, name)
        for item in summarize(self.rows):
            if item["metric"] in STATE_METRICS:
                engine.state.metrics[f"{self.prefix}{item['metric']}_{item['region']}"] = item["mean"]


class EvaluationWriter:
    """Write the rows of a :class:`LabelMapMetric` after each evaluation: ``metrics.csv`` (one row per case and
    region, the columns of ``monai-iunet evaluate``) and ``metrics_summary.csv`` in ``output_dir``.

    Args:
        metric: the evaluator's :class:`LabelMapMetric`.
        output_dir: the folder to write to.
    """

    def __init__(self, metric: LabelMapMetric, output_dir: str | os.PathLike) -> None:
        self.metric = metric
        self.output_dir = Path(output_dir)
        self.enabled = True

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled or not self.metric.rows:
            return
        if dist.is_available() and dist.is_initialized() and dist.get_rank() > 0:
            return
        write_csv(self.metric.rows, self.output_dir / "metrics.csv")
        summary = summarize(self.metric.rows)
        write_csv(summary, self.output_dir / "metrics_summary.csv", columns=SUMMARY_COLUMNS)
