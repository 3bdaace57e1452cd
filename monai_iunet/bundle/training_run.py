"""Training runs that keep their promises: a new run does not replace a trained model, a resume ends where it says.

:func:`check_training_run` runs in ``train.json``'s ``initialize`` (before anything is trained or generated):

- a run from scratch refuses to replace an existing ``models/model.pt`` (as inference refuses to overwrite
  predictions): ``--overwrite True`` replaces it, ``--resume True`` continues that run, another ``--bundle_root``
  starts a new one. Clients that fine-tune the model in place (MONAI Label's train task) skip ``initialize``.
- a resume to another ``--epochs`` than the checkpoint's learning-rate schedule refuses, naming the ``--epochs``
  that finishes the run: the restored cosine schedule has reached learning rate 0 at its own end, so more epochs
  would train nothing and then jump back to the initial rate.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.utils import str2bool

from monai_iunet.bundle.checkpoints import latest_checkpoint, read_model_record
from monai_iunet.errors import OutputExistsError, UserInputError

__all__ = ["check_training_run"]


def _describe(model: Path) -> str:
    record = read_model_record(model) or {}
    facts = [f"{k} {record[k]}" for k in ("epoch", "metric_name", "metric") if k in record]
    return f" ({', '.join(str(f) for f in facts)})" if facts else ""


def check_training_run(ckpt_dir: str | os.PathLike, epochs: int, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse a training run that would replace a trained model or resume to a schedule it cannot follow.

    Args:
        ckpt_dir: the run's checkpoint folder (``models/``).
        epochs: the ``--epochs`` asked for.
        resume: whether the run continues from the newest checkpoint in ``ckpt_dir``.
        overwrite: allow a run from scratch to replace ``ckpt_dir/model.pt``.

    Raises:
        OutputExistsError: a run from scratch would replace ``model.pt``.
        UserInputError: a resume asks for other ``epochs`` than the checkpoint's schedule.
    """
    model = Path(ckpt_dir) / "model.pt"
    if not str2bool(resume):
        if model.exists() and not str2bool(overwrite):
            raise OutputExistsError(
                f"{model} already holds a trained model{_describe(model)}; pass --overwrite True to replace it, "
                "--resume True to continue that run, or train into another --bundle_root."
            )
        return
    checkpoint = latest_checkpoint(ckpt_dir)
    if checkpoint is None:
        return
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    t_max = state.get("lr_scheduler", {}).get("T_max")
    if t_max is not None and int(t_max) != int(epochs):
        raise UserInputError(
            f"{checkpoint} was trained with a learning-rate schedule of {t_max} epochs, but --epochs is {epochs}: "
            f"the restored schedule would not follow it. Pass --epochs {t_max} to finish that run, or start a new "
            "run with more epochs (--overwrite True, or another --bundle_root)."
        )
