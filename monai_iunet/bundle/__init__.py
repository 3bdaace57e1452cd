"""Helpers the bundle configs call: embedded dataset, atomic checkpoints, resume, safe outputs, reports.

- :func:`ensure_dataset` generates the synthetic BraTS-like dataset where ``dataset_dir`` is missing or empty.
- :class:`AtomicCheckpointSaver` is MONAI's ``CheckpointSaver`` writing every file through a temporary file and
  ``os.replace`` (a killed run never leaves a truncated checkpoint, nor a moment without the best model), and
  optionally saving the state of the engine it is attached to (epoch and iteration), for resuming.
- :class:`LatestCheckpointLoader` resumes from the newest interval checkpoint in a folder, if there is one, through
  MONAI's ``CheckpointLoader`` (``torch.load(weights_only=True)``).
- :func:`select_cases` picks the cases to infer; :func:`check_no_predictions` refuses to overwrite existing
  predictions; :func:`case_name_formatter` names saved predictions after their case; :func:`report_broken_cases`
  lists the cases inference could not read.
- :func:`format_brats_metrics` / :func:`print_brats_metrics` give Dice and sensitivity per region (TC, WT, ET) as a
  table; :func:`print_run_summary` ends a run with that table, the epoch the model is from and where the outputs are.
- :mod:`~monai_iunet.bundle.handlers`: one log line per epoch and per validation, validation after the last epoch.
- :mod:`~monai_iunet.bundle.inference`: inference case by case (out-of-memory cases reported, the others predicted)
  and a NIfTI writer for predictions already on their input's grid.
- :func:`label_values`: the label convention of a training datalist, named or recognised from its items.
- :mod:`~monai_iunet.bundle.shipped`: the bundles installed with the package (``monai-iunet bundle copy``).
"""

from __future__ import annotations

from monai_iunet.bundle.checkpoints import AtomicCheckpointSaver, LatestCheckpointLoader, latest_checkpoint
from monai_iunet.bundle.dataset import ensure_dataset
from monai_iunet.bundle.handlers import EpochLossLogger, ValidateAtIntervalAndEnd, ValidationLogger, quiet_fresh_start
from monai_iunet.bundle.inference import NiftiWriterOnOwnGrid, infer_case_by_case
from monai_iunet.bundle.labels import detect_label_convention, label_values
from monai_iunet.bundle.metrics import REGIONS, ConfusionDetailsToMetric, format_brats_metrics, print_brats_metrics
from monai_iunet.bundle.predictions import (
    case_name_formatter,
    check_no_predictions,
    check_writable,
    report_broken_cases,
    select_cases,
)
from monai_iunet.bundle.summary import load_model_weights, print_run_summary

__all__ = [
    "AtomicCheckpointSaver",
    "ConfusionDetailsToMetric",
    "EpochLossLogger",
    "LatestCheckpointLoader",
    "NiftiWriterOnOwnGrid",
    "REGIONS",
    "ValidateAtIntervalAndEnd",
    "ValidationLogger",
    "case_name_formatter",
    "check_no_predictions",
    "check_writable",
    "detect_label_convention",
    "ensure_dataset",
    "format_brats_metrics",
    "infer_case_by_case",
    "label_values",
    "latest_checkpoint",
    "load_model_weights",
    "print_brats_metrics",
    "print_run_summary",
    "quiet_fresh_start",
    "report_broken_cases",
    "select_cases",
]
