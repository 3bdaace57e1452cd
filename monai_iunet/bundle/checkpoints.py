"""Checkpoints a killed run cannot truncate, and resuming from the newest one."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.networks.utils import copy_model_state
from monai.utils import str2bool
from torch import nn

from monai_iunet.atomic import atomic_path
from monai_iunet.bundle.handlers import quiet_fresh_start
from monai_iunet.errors import InputNotFoundError, UserInputError

__all__ = [
    "AtomicCheckpointSaver",
    "LatestCheckpointLoader",
    "latest_checkpoint",
    "load_model_weights",
    "read_model_record",
]

logger = logging.getLogger(__name__)


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """The interval checkpoint ``<prefix>_epoch=<n>.pt`` (or ``_iteration=<n>``) with the largest ``n``, or ``None``."""
    found = _interval_checkpoints(ckpt_dir, prefix)
    return os.path.join(ckpt_dir, found[-1][1]) if found else None


def _interval_checkpoints(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> list[tuple[int, str]]:
    """``(n, file name)`` of the interval checkpoints ``<prefix>_epoch=<n>.pt`` in ``ckpt_dir``, by ``n``."""
    pattern = re.compile(rf"{re.escape(prefix)}_(?:epoch|iteration)=(\d+)\.pt")
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted((int(m.group(1)), name) for name in os.listdir(ckpt_dir) if (m := pattern.fullmatch(name)))


def _write_json_atomically(path: str, record: dict) -> None:
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(record, indent=4) + "\n")


def read_model_record(model_path: str | os.PathLike) -> dict | None:
    """The record :class:`AtomicCheckpointSaver` wrote beside a best model (``<model>.json``), or ``None``."""
    try:
        with open(f"{model_path}.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _cast_floating(state: Any, dtype: torch.dtype) -> Any:
    """``state`` (a tensor, or mappings of them) with its floating-point tensors cast to ``dtype``."""
    if isinstance(state, torch.Tensor):
        return state.to(dtype) if state.is_floating_point() else state
    if isinstance(state, Mapping):
        cast = type(state)((k, _cast_floating(v, dtype)) for k, v in state.items())
        if hasattr(state, "_metadata"):  # a module's state dict: the version record load_state_dict reads
            cast._metadata = state._metadata
        return cast
    return state


class _AtomicDiskSaver(DiskSaver):
    """Ignite ``DiskSaver`` writing atomically, optionally always to the same file name.

    With a fixed file name, ``remove`` does nothing: the next save replaces the file atomically, so the previous
    checkpoint stays readable until the new one is complete. With ``dtype``, floating-point tensors are stored in
    that type (the objects saved are not changed).
    """

    def __init__(self, dirname: str, filename: str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, create_dir=True, require_empty=False)
        self.filename = filename
        self.dtype = dtype

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if self.dtype is not None:
            checkpoint = _cast_floating(checkpoint, self.dtype)
        super().__call__(checkpoint=checkpoint, filename=self.filename or filename, metadata=metadata)

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


_STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _storage_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The ``torch.dtype`` of ``key_metric_dtype`` (a name or a dtype), ``None`` for none."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in _STORAGE_DTYPES:
        raise UserInputError(
            f"key_metric_dtype {dtype!r}: not a storage type for weights; use one of {', '.join(_STORAGE_DTYPES)}."
        )
    return _STORAGE_DTYPES[str(dtype)]


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
        key_metric_dtype: if given (``"float16"``, ``"bfloat16"``), the best model (``key_metric_filename``) stores
            its floating-point weights in this type, which halves the file; loading into a float32 network converts
            them back (``load_state_dict``). Interval checkpoints, for resuming, keep full precision.
        kwargs: the other arguments of ``monai.handlers.CheckpointSaver``.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: dict,
        engine_key: str | None = None,
        key_metric_dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        self.engine_key = engine_key
        self.enabled = True  # False: a final evaluation of the saved model must not save it again
        self._key_metric_filename = kwargs.get("key_metric_filename")
        self._key_metric_name = kwargs.get("key_metric_name")
        fixed_names = {
            "_final_checkpoint": kwargs.get("final_filename"),
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": None,
        }
        dtypes = {"_key_metric_checkpoint": _storage_dtype(key_metric_dtype)}
        for attribute, filename in fixed_names.items():
            checkpoint = getattr(self, attribute)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(save_dir, filename, dtypes.get(attribute))

    def state_dict(self) -> dict:
        """The best-metric record, so that a resumed run replaces the best model only by a better one."""
        return self._key_metric_checkpoint.state_dict() if self._key_metric_checkpoint is not None else {}

    def metrics_completed(self, engine: Engine) -> None:
        """Save the model if its key metric is the best so far, and then record its epoch and score beside it.

        The record is ``<key_metric_filename>.json`` (``models/model.pt.json``): ``{"epoch", "metric", "value"}``,
        the training epoch the saved model is from; ``model.pt`` itself stays a plain state dict, as the model zoo,
        MONAI Deploy and MONAI Label load it.
        """
        if not self.enabled:
            return
        checkpoint = self._key_metric_checkpoint
        before = checkpoint._saved[-1].priority if checkpoint is not None and checkpoint._saved else None
        super().metrics_completed(engine)
        after = checkpoint._saved[-1].priority if checkpoint is not None and checkpoint._saved else None
        filename = self._key_metric_filename
        if after is not None and after != before and filename:
            record = {
                "epoch": int(engine.state.epoch),
                "metric": self._key_metric_name or engine.state.key_metric_name,
                "value": float(after),
            }
            _write_json_atomically(os.path.join(self.save_dir, f"{filename}.json"), record)

    def interval_completed(self, engine: Engine) -> None:
        """Save the interval checkpoint, then remove older ones beyond ``n_saved`` left by earlier (resumed) runs.

        Ignite's ``n_saved`` only counts the files one process wrote; without this, every resume would leave
        ``n_saved`` more checkpoints behind.
        """
        super().interval_completed(engine)
        checkpoint = self._interval_checkpoint
        if checkpoint is None or checkpoint.n_saved is None:
            return
        prefix = f"{checkpoint.filename_prefix}_checkpoint" if checkpoint.filename_prefix else "checkpoint"
        for _, name in _interval_checkpoints(self.save_dir, prefix)[: -checkpoint.n_saved]:
            os.remove(os.path.join(self.save_dir, name))

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
        self.enabled = str2bool(enabled)
        self.engine_key = engine_key
        self.map_location = map_location
        self.prefix = prefix

    def attach(self, engine: Engine) -> None:
        """Load the newest checkpoint now (before the run starts, so that ignite's log names the right epoch)."""
        path = latest_checkpoint(self.ckpt_dir, self.prefix) if self.enabled else None
        if path is None:
            if self.enabled:
                logger.info(f"resume: no checkpoint in {self.ckpt_dir!r}, training from scratch.")
            quiet_fresh_start(engine)
            return
        self._warn_ignored_learning_rate(path)
        CheckpointLoader(
            load_path=path, load_dict={**self.load_dict, self.engine_key: engine}, map_location=self.map_location
        )(engine)
        logger.info(f"resume: continuing from {path} (epoch {engine.state.epoch} of {engine.state.max_epochs} done).")
        self._extend_schedule(engine.state.max_epochs)
        if engine.state.epoch >= engine.state.max_epochs:  # ignite would start again from epoch 0
            logger.info("resume: nothing left to train; pass a larger --epochs to train longer.")
            engine.add_event_handler(Events.STARTED, lambda e: e.terminate())

    def _extend_schedule(self, epochs: int) -> None:
        """Stretch a restored cosine schedule (``T_max``) to the ``epochs`` of this run, from the epoch reached.

        The restored ``CosineAnnealingLR`` ends at learning rate ``eta_min`` after its own ``T_max`` epochs; resuming
        to more epochs would train at that rate and then jump back to the initial one. The learning rate is set to
        the closed form of the stretched schedule at the saved epoch, from which the scheduler's steps continue.
        """
        scheduler = self.load_dict.get("lr_scheduler")
        if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) or scheduler.T_max == epochs:
            return
        old, scheduler.T_max = scheduler.T_max, int(epochs)
        progress = (1 + math.cos(math.pi * scheduler.last_epoch / scheduler.T_max)) / 2
        for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * progress
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
        logger.info(
            f"resume: the cosine learning-rate schedule of {old} epochs now ends at epoch {epochs}; learning rate "
            f"{scheduler._last_lr[0]:g} at epoch {scheduler.last_epoch}."
        )

    def _warn_ignored_learning_rate(self, path: str) -> None:
        """Warn when the configured learning rate differs from the checkpoint's: the checkpoint's is used."""
        optimizer = self.load_dict.get("optimizer")
        if optimizer is None:
            return
        saved = torch.load(path, map_location="cpu", weights_only=True).get("optimizer", {}).get("param_groups")
        if not saved:
            return
        configured = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
        resumed = saved[0].get("initial_lr", saved[0]["lr"])
        if abs(configured - resumed) > 1e-12 * max(abs(resumed), 1.0):
            logger.warning(
                f"resume: the learning rate {configured:g} given now is ignored; the optimizer and scheduler "
                f"continue from the checkpoint (initial learning rate {resumed:g}). Start a fresh run "
                "(--resume False, another --ckpt_dir) to train with a new learning rate."
            )


def load_model_weights(
    network: nn.Module,
    model_path: str | os.PathLike,
    map_location: Any = "cpu",
    advice: str = "train first (run train.json), or give --ckpt_dir with model.pt.",
) -> nn.Module:
    """Load the trained weights in ``model_path`` (``models/model.pt``) into ``network`` and return it.

    Reads with ``torch.load(weights_only=True)``: a state dict, or a checkpoint dict with a ``"model"`` entry (what
    :class:`AtomicCheckpointSaver` writes). The weights are matched to the network by
    :func:`monai.networks.utils.copy_model_state` (which also unwraps ``DataParallel`` / ``DistributedDataParallel``)
    and loaded only if every tensor of the network gets one and every tensor of the file is used.

    Args:
        network: the network (or its ``DataParallel`` / ``DistributedDataParallel`` wrapper).
        model_path: the weights file.
        map_location: where to load the tensors (``torch.load``'s ``map_location``).
        advice: what the error about a missing file tells the user to do.

    Raises:
        InputNotFoundError: no file at ``model_path``.
        UserInputError: the weights do not fit the network (other channels, levels or blocks).
    """
    if not os.path.isfile(model_path):
        raise InputNotFoundError(f"no trained model at {str(model_path)!r}; {advice}")
    state = torch.load(model_path, map_location=map_location, weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    weights, loaded, not_loaded = copy_model_state(network, state, inplace=False)
    unused = sorted(set(state) - set(loaded))
    if not_loaded or unused:
        raise UserInputError(
            f"the weights in {str(model_path)!r} do not fit the network: {len(not_loaded)} of its {len(weights)} "
            f"tensors find none of that name and shape there ({', '.join(not_loaded[:3]) or '-'}), and "
            f"{len(unused)} of the file's are not the network's ({', '.join(unused[:3]) or '-'}); give the network "
            "settings the model was trained with."
        )
    module = network.module if isinstance(network, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else network
    module.load_state_dict(weights)
    return network
