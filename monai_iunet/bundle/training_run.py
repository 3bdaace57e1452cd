"""Training runs that keep their promises: a new training run does not replace a trained model.

:func:`check_training_run` runs in ``train.json``'s ``initialize`` (before anything is trained or generated):

- a run from scratch refuses to replace an existing ``models/model.pt`` (as inference refuses to overwrite
  predictions): ``--overwrite True`` replaces it, ``--resume True`` continues that run, another ``--bundle_root``
  starts a new one. A run that starts from that model (a ``CheckpointLoader`` of it among ``train#handlers``, as
  MONAI Label's train task adds to fine-tune the model in place) replaces it as a continuation.

A resume to another ``--epochs`` stretches the restored cosine schedule to it
(:class:`~monai_iunet.bundle.LatestCheckpointLoader`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import str2bool

from monai_iunet.bundle.checkpoints import read_model_record
from monai_iunet.errors import OutputExistsError

__all__ = ["check_training_run"]


def _describe(model: Path) -> str:
    """`` (epoch 8, val_mean_dice 0.8744)`` from the model's record (``model.pt.json``), or ``""`` without one."""
    record = read_model_record(model) or {}
    facts = [f"epoch {record['epoch']}"] if "epoch" in record else []
    if isinstance(record.get("value"), (int, float)):
        facts.append(f"{record.get('metric', 'score')} {record['value']:.4f}")
    return f" ({', '.join(facts)})" if facts else ""


def _loads(handlers: Sequence[Any] | None, model: Path) -> bool:
    """Whether one of ``handlers`` (objects, or their configs) is a ``CheckpointLoader`` of ``model``."""
    for handler in handlers or []:
        if isinstance(handler, Mapping):
            name, path = str(handler.get("_target_", "")), str(handler.get("load_path", ""))
        else:
            name, path = type(handler).__name__, str(getattr(handler, "load_path", ""))
        if name.endswith("CheckpointLoader") and path and Path(path).resolve() == model.resolve():
            return True
    return False


def check_training_run(
    ckpt_dir: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    handlers: Sequence[Any] | None = None,
) -> None:
    """Refuse a training run from scratch that would replace a trained model.

    Args:
        ckpt_dir: the run's checkpoint folder (``models/``).
        resume: whether the run continues from the newest checkpoint in ``ckpt_dir``.
        overwrite: allow a run from scratch to replace ``ckpt_dir/model.pt``.
        handlers: the training handlers (``"@train#handlers"``): a ``CheckpointLoader`` of ``model.pt`` among
            them makes the run a continuation of that model.

    Raises:
        OutputExistsError: a run from scratch would replace ``model.pt``.
    """
    model = Path(ckpt_dir) / "model.pt"
    if str2bool(resume) or str2bool(overwrite) or not model.exists() or _loads(handlers, model):
        return
    raise OutputExistsError(
        f"{model} already holds a trained model{_describe(model)}, and this run would replace it: to run again, add "
        "--overwrite True (train from scratch and replace it), --resume True (continue that run), or --bundle_root "
        "<another folder> (a new run beside it)."
    )
