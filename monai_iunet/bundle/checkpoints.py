"""Checkpoints a killed run cannot truncate, recording what a resumed run needs (best epoch, number of processes)."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver
from monai.networks.utils import copy_model_state
from torch import nn

from monai_iunet.atomic import atomic_path
from monai_iunet.errors import InputNotFoundError, UserInputError

__all__ = [
    "AtomicCheckpointSaver",
    "latest_checkpoint",
    "load_model_weights",
    "read_model_record",
    "world_size",
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


def world_size() -> int:
    """The number of processes training together: ``torch.distributed``'s world size, or 1 without a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _TrainerState:
    """The state dict of a trainer (ignite ``Engine``) plus ``world_size``, the number of processes that trained it.

    A run resumed with another number of processes has another number of iterations per epoch; the recorded
    ``world_size`` lets :class:`~monai_iunet.bundle.LatestCheckpointLoader` say why. Loading ignores the extra key.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def state_dict(self) -> dict:
        return {**self.engine.state_dict(), "world_size": world_size()}

    def load_state_dict(self, state_dict: Mapping) -> None:
        self.engine.load_state_dict(state_dict)


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
    :class:`~monai_iunet.bundle.LatestCheckpointLoader` resume the epoch count (an engine cannot be named in its own
    handler's config), with the number of processes that trained it (``world_size``).

    Note that interval checkpoints are removed before the next one is written (ignite's order): keep ``n_saved >= 2``
    so that one complete interval checkpoint always exists. ``state_dict`` / ``load_state_dict`` carry the
    best-metric record of a key-metric saver (score and epoch), so put the best-model saver in the resumable
    checkpoint too: a resumed run then replaces the best model only by a better one, and the engine this saver is
    attached to (the evaluator) continues from the same best score and epoch, so that its log names the epoch of the
    model actually saved.

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
        self._score_sign = -1.0 if kwargs.get("key_metric_negative_sign") else 1.0
        self._best_epoch: int | None = None  # the training epoch of the best model saved, once there is one
        self._engine: Engine | None = None
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
        """The best-metric record (ignite's ``_saved``, and ``best_epoch``), for resuming."""
        if self._key_metric_checkpoint is None:
            return {}
        state = dict(self._key_metric_checkpoint.state_dict())
        if self._best_epoch is not None:
            state["best_epoch"] = self._best_epoch
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the best-metric record; the attached engine's ``best_metric`` and ``best_metric_epoch`` follow it.

        A checkpoint without ``best_epoch`` (written before it was recorded) takes it from ``<model>.json`` when
        that records the same score.
        """
        super().load_state_dict(state_dict)
        best = self._best_score()
        self._best_epoch = state_dict.get("best_epoch")
        if self._best_epoch is None and best is not None and self._key_metric_filename:
            record = read_model_record(os.path.join(self.save_dir, self._key_metric_filename)) or {}
            if record.get("value") == best and isinstance(record.get("epoch"), int):
                self._best_epoch = record["epoch"]
        self._share_best()

    def _best_score(self) -> float | None:
        checkpoint = self._key_metric_checkpoint
        if checkpoint is None or not checkpoint._saved:
            return None
        return self._score_sign * checkpoint._saved[-1].priority

    def _share_best(self) -> None:
        """Give the attached engine the restored best score and its epoch (MONAI compares new scores with them)."""
        best = self._best_score()
        if self._engine is not None and best is not None and self._best_epoch is not None:
            self._engine.state.best_metric = best
            self._engine.state.best_metric_epoch = self._best_epoch

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
        if after is None or after == before:
            return
        self._best_epoch = int(engine.state.epoch)
        if filename:
            record = {
                "epoch": self._best_epoch,
                "metric": self._key_metric_name or engine.state.key_metric_name,
                "value": float(self._score_sign * after),
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
                    checkpoint.to_save = {**checkpoint.to_save, self.engine_key: _TrainerState(engine)}
        super().attach(engine)
        self._engine = engine
        self._share_best()  # a record restored before this saver was attached


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
