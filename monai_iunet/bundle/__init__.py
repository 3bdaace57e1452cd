"""Generic bundle plumbing the configs call: atomic checkpoints, resume, handlers, safe outputs, shipped bundles.

- :class:`AtomicCheckpointSaver` is MONAI's ``CheckpointSaver`` writing every file through a temporary file and
  ``os.replace`` (a killed run never leaves a truncated checkpoint, nor a moment without the best model), and
  optionally saving the state of the engine it is attached to (epoch and iteration), for resuming.
- :class:`LatestCheckpointLoader` (:mod:`~monai_iunet.bundle.resume`) resumes from the newest interval checkpoint in a
  folder, if there is one, through MONAI's ``CheckpointLoader`` (``torch.load(weights_only=True)``), to this run's
  epochs, number of processes and data; :func:`load_model_weights` loads a trained ``model.pt``.
- :func:`check_no_predictions` refuses to overwrite existing predictions; :func:`case_name_formatter` names saved
  predictions after their case; :func:`report_broken_cases` lists the cases inference could not read.
- :mod:`~monai_iunet.bundle.handlers`: one log line per epoch and per validation, validation after the last epoch.
- :mod:`~monai_iunet.bundle.inference`: inference case by case (out-of-memory cases reported, the others predicted)
  and a NIfTI writer for predictions already on their input's grid.
- :class:`RunProgressBar`: a progress bar over a training or evaluation run, with the time left for the run (drawn
  only at a terminal, :mod:`monai_iunet.progress`).
- :mod:`~monai_iunet.bundle.shipped`: the bundles installed with the package (``monai-iunet bundle copy``).
- :func:`config_component`, :func:`bundle_config`: a component of another config of the bundle (the validation
  uses inference's ``inferer``).

The BraTS-only helpers (label conventions of datalists, per-region metric tables, run summaries, the cases to
infer) are in :mod:`monai_iunet.brats`; the embedded synthetic dataset in :mod:`monai_iunet.data.embedded_dataset`.
"""

from __future__ import annotations

from monai_iunet.bundle.checkpoints import (
    AtomicCheckpointSaver,
    latest_checkpoint,
    load_model_weights,
)
from monai_iunet.bundle.components import bundle_config, config_component
from monai_iunet.bundle.handlers import EpochLossLogger, ValidateAtIntervalAndEnd, ValidationLogger, quiet_fresh_start
from monai_iunet.bundle.inference import NiftiWriterOnOwnGrid, infer_case_by_case
from monai_iunet.bundle.predictions import (
    case_name_formatter,
    check_no_predictions,
    check_writable,
    report_broken_cases,
)
from monai_iunet.bundle.progress import RunProgressBar
from monai_iunet.bundle.resume import LatestCheckpointLoader
from monai_iunet.bundle.training_run import check_training_run

__all__ = [
    "AtomicCheckpointSaver",
    "EpochLossLogger",
    "LatestCheckpointLoader",
    "NiftiWriterOnOwnGrid",
    "RunProgressBar",
    "ValidateAtIntervalAndEnd",
    "ValidationLogger",
    "bundle_config",
    "case_name_formatter",
    "check_no_predictions",
    "check_training_run",
    "check_writable",
    "config_component",
    "infer_case_by_case",
    "latest_checkpoint",
    "load_model_weights",
    "quiet_fresh_start",
    "report_broken_cases",
]
