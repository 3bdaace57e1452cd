"""Helpers that the bundle configs call: embedded dataset, atomic checkpoints, resume, safe outputs, reports.

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
  table.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.metrics import compute_confusion_matrix_metric

from monai_iunet.data.datalist import BrokenCaseError, _as_bool, case_name
from monai_iunet.data.synthetic_brats import generate_synthetic_brats

__all__ = [
    "AtomicCheckpointSaver",
    "ConfusionDetailsToMetric",
    "LatestCheckpointLoader",
    "REGIONS",
    "case_name_formatter",
    "check_no_predictions",
    "ensure_dataset",
    "format_brats_metrics",
    "latest_checkpoint",
    "print_brats_metrics",
    "report_broken_cases",
    "select_cases",
]

logger = logging.getLogger(__name__)

REGIONS = ("tc", "wt", "et")
"""The BraTS evaluation regions in channel order: tumour core, whole tumour, enhancing tumour."""


def ensure_dataset(dataset_dir: str | os.PathLike, **synthetic: Any) -> str:
    """Return ``dataset_dir``, first writing the synthetic BraTS-like dataset there if it is missing or empty.

    The dataset is written to a temporary sibling folder and renamed into place, so an interrupted generation never
    leaves a partial dataset behind. In a distributed run, rank 0 generates and the other ranks wait for it.

    Args:
        dataset_dir: the dataset folder.
        synthetic: arguments of :func:`~monai_iunet.data.generate_synthetic_brats` (``num_cases``, ``spatial_size``,
            ``seed``, ``num_unlabeled``, ...).
    """
    path = Path(dataset_dir)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    is_writer = not distributed or torch.distributed.get_rank() == 0
    if is_writer and (not path.exists() or not any(path.iterdir())):
        logger.info(f"dataset_dir {str(path)!r} is missing or empty: generating a synthetic BraTS-like dataset there.")
        partial = path.parent / f".{path.name}.partial-{os.getpid()}"
        generate_synthetic_brats(partial, **synthetic)
        if path.exists():
            path.rmdir()
        os.replace(partial, path)
    if distributed:
        torch.distributed.barrier()
    return str(path)


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


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """The interval checkpoint ``<prefix>_epoch=<n>.pt`` (or ``_iteration=<n>``) with the largest ``n``, or ``None``."""
    pattern = re.compile(rf"{re.escape(prefix)}_(?:epoch|iteration)=(\d+)\.pt")
    found = []
    if os.path.isdir(ckpt_dir):
        for name in os.listdir(ckpt_dir):
            match = pattern.fullmatch(name)
            if match:
                found.append((int(match.group(1)), name))
    return os.path.join(ckpt_dir, max(found)[1]) if found else None


class _AtomicDiskSaver(DiskSaver):
    """Ignite ``DiskSaver`` writing atomically, optionally always to the same file name.

    With a fixed file name, ``remove`` does nothing: the next save replaces the file atomically, so the previous
    checkpoint stays readable until the new one is complete.
    """

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, create_dir=True, require_empty=False)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint=checkpoint, filename=self.filename or filename, metadata=metadata)

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` that writes every checkpoint atomically and can save its engine's state.

    Each file is written to a temporary file in ``save_dir`` and moved into place with ``os.replace``, so a run killed
    while saving leaves the previous checkpoint intact. With ``engine_key``, the state of the engine this handler is
    attached to (epoch, iteration, max_epochs) is saved under that key too, which lets
    :class:`LatestCheckpointLoader` resume the epoch count (an engine cannot be named in its own handler's config).

    Note that interval checkpoints are removed before the next one is written (ignite's order): keep ``n_saved >= 2``
    so that one complete interval checkpoint always exists. ``state_dict`` / ``load_state_dict`` carry the
    best-metric record of a key-metric saver, so put the best-model saver in the resumable checkpoint too.

    Args:
        save_dir: directory to save the checkpoints.
        save_dict: the objects to save, ``{name: object with state_dict()}``.
        engine_key: if given, also save the attached engine's state under this key.
        kwargs: the other arguments of ``monai.handlers.CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, engine_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        self.engine_key = engine_key
        fixed_names = {
            "_final_checkpoint": kwargs.get("final_filename"),
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": None,
        }
        for attribute, filename in fixed_names.items():
            checkpoint = getattr(self, attribute)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(save_dir, filename)

    def state_dict(self) -> dict:
        """The best-metric record, so that a resumed run replaces the best model only by a better one."""
        return self._key_metric_checkpoint.state_dict() if self._key_metric_checkpoint is not None else {}

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            for attribute in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint"):
                checkpoint = getattr(self, attribute)
                if checkpoint is not None:
                    checkpoint.to_save = {**checkpoint.to_save, self.engine_key: engine}
        super().attach(engine)


class LatestCheckpointLoader:
    """Resume training from the newest interval checkpoint in ``ckpt_dir``, if ``enabled`` and there is one.

    Loads ``load_dict`` (model, optimizer, scheduler, ...) and the state of the engine it is attached to (saved by
    :class:`AtomicCheckpointSaver` with the same ``engine_key``) with MONAI's ``CheckpointLoader``, which reads the
    file with ``torch.load(weights_only=True)`` and keeps the engine's ``max_epochs``: the resumed run continues from
    the saved epoch to the configured number of epochs.

    Args:
        ckpt_dir: folder of the interval checkpoints (``checkpoint_epoch=<n>.pt``).
        load_dict: objects to restore, ``{name: object with load_state_dict()}``.
        enabled: resume at all; ``False`` makes this handler do nothing.
        engine_key: key of the engine's state in the checkpoint.
        map_location: ``torch.load`` map location (the device to train on).
        prefix: file-name prefix of the interval checkpoints.
    """

    def __init__(
        self,
        ckpt_dir: str,
        load_dict: dict,
        enabled: bool = True,
        engine_key: str = "trainer",
        map_location: str | torch.device | None = None,
        prefix: str = "checkpoint",
    ) -> None:
        self.ckpt_dir = ckpt_dir
        self.load_dict = load_dict
        self.enabled = _as_bool(enabled)
        self.engine_key = engine_key
        self.map_location = map_location
        self.prefix = prefix

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = latest_checkpoint(self.ckpt_dir, self.prefix)
        if path is None:
            logger.info(f"resume: no checkpoint in {self.ckpt_dir!r}, training from scratch.")
            return
        logger.info(f"resume: continuing from {path}.")
        CheckpointLoader(
            load_path=path, load_dict={**self.load_dict, self.engine_key: engine}, map_location=self.map_location
        ).attach(engine)


def select_cases(datalist: Mapping[str, Any], subset: str = "testing") -> list[dict]:
    """The cases of a :func:`~monai_iunet.data.build_datalist` result to infer, without their labels.

    Args:
        datalist: the result of ``build_datalist``.
        subset: ``"testing"`` (unlabelled cases), ``"validation"``, ``"training"`` or ``"all"``.
    """
    subsets = ("training", "validation", "testing")
    if subset not in (*subsets, "all"):
        raise ValueError(f"inference_subset must be one of {(*subsets, 'all')}, got {subset!r}.")
    items = [item for name in subsets if subset in (name, "all") for item in datalist[name]]
    if not items:
        raise ValueError(
            f"the dataset has no {subset!r} cases to infer ({datalist['layout']} layout; unlabelled cases are "
            "'testing'); pass --inference_subset all to infer every case."
        )
    return [{"image": item["image"], "case": item["case"]} for item in items]


def case_name_formatter(metadict: dict, saver: Any = None) -> dict:
    """``SaveImaged`` ``output_name_formatter`` naming a prediction after its case (see :func:`case_name`)."""
    return {"subject": case_name(metadict["filename_or_obj"]), "idx": metadict.get("patch_index")}


def check_no_predictions(
    output_dir: str | os.PathLike,
    items: Iterable[dict],
    overwrite: bool = False,
    postfix: str = "seg",
    ext: str = ".nii.gz",
) -> None:
    """Raise ``FileExistsError`` if inference would overwrite existing predictions and ``overwrite`` is not set.

    Args:
        output_dir: where the predictions go.
        items: datalist items to infer (their ``"case"`` names the files ``<case>_<postfix><ext>``).
        overwrite: allow overwriting.
        postfix: file-name postfix of the predictions.
        ext: file extension of the predictions.
    """
    if _as_bool(overwrite):
        return
    existing = [str(path) for item in items if (path := Path(output_dir) / f"{item['case']}_{postfix}{ext}").exists()]
    if existing:
        listed = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise FileExistsError(
            f"{len(existing)} prediction(s) already exist in {str(output_dir)!r} ({listed}); pass --overwrite True "
            "to replace them, or choose another --output_dir."
        )


def report_broken_cases(broken: Sequence[str], what: str = "inference") -> None:
    """Raise a :class:`BrokenCaseError` listing every case in ``broken`` (after the good cases were processed)."""
    if broken:
        raise BrokenCaseError(
            f"{what} skipped {len(broken)} broken case(s); the others were processed:\n  " + "\n  ".join(broken)
        )


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
        f"{region.upper():<8}{cell(f'dice_{region}'):>10}{cell(f'sensitivity_{region}'):>14}" for region in REGIONS
    ]
    sensitivities = [metrics.get(f"{prefix}sensitivity_{region}") for region in REGIONS]
    mean_sensitivity = (
        f"{sum(float(s) for s in sensitivities) / len(REGIONS):.4f}" if None not in sensitivities else "-"
    )
    rows.append(f"{'mean':<8}{cell('mean_dice'):>10}{mean_sensitivity:>14}")
    return "\n".join(rows)


def print_brats_metrics(metrics: Mapping[str, Any], prefix: str = "val_") -> str:
    """Print :func:`format_brats_metrics` of ``metrics`` (e.g. ``evaluator.state.metrics``) and return it."""
    table = format_brats_metrics(metrics, prefix)
    print(table, flush=True)
    return table
