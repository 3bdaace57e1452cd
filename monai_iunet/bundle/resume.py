"""Resuming a training run from its newest interval checkpoint, to the epochs, processes and data of this run."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader
from monai.utils import str2bool

from monai_iunet.bundle.checkpoints import latest_checkpoint, world_size
from monai_iunet.bundle.handlers import quiet_fresh_start
from monai_iunet.errors import UserInputError

__all__ = ["LatestCheckpointLoader"]

logger = logging.getLogger(__name__)


class LatestCheckpointLoader:
    """Resume training from the newest interval checkpoint in ``ckpt_dir``, if ``enabled`` and there is one.

    Loads ``load_dict`` (model, optimizer, scheduler, ...) and the state of the engine it is attached to (saved by
    :class:`~monai_iunet.bundle.AtomicCheckpointSaver` with the same ``engine_key``) with MONAI's
    ``CheckpointLoader``, which reads the file with ``torch.load(weights_only=True)`` and keeps the engine's
    ``max_epochs``: the resumed run continues from the saved epoch to the configured number of epochs. What may differ
    from the saved run:

    - more ``epochs``: a restored cosine schedule is stretched to them (:meth:`_extend_schedule`);
    - the number of processes (``torchrun --nproc_per_node``), the batch size or the training set, and with them the
      iterations per epoch: the run continues after the saved epoch with full epochs of this run's length
      (:meth:`_continue_with_full_epochs`), and the log says what changed;
    - fewer ``epochs`` than the checkpoint has done: refused (:class:`~monai_iunet.errors.UserInputError`).

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
        saved = torch.load(path, map_location="cpu", weights_only=True)
        saved_trainer = saved.get(self.engine_key, {})
        self._check_epochs(path, saved_trainer, engine.state.max_epochs)
        self._warn_ignored_learning_rate(saved)
        epoch_length = engine.state.epoch_length  # this run's, before the checkpoint's replaces it
        CheckpointLoader(
            load_path=path, load_dict={**self.load_dict, self.engine_key: engine}, map_location=self.map_location
        )(engine)
        self._continue_with_full_epochs(engine, epoch_length, saved_trainer.get("world_size"))
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

    def _warn_ignored_learning_rate(self, checkpoint: Mapping) -> None:
        """Warn when the configured learning rate differs from the checkpoint's: the checkpoint's is used."""
        optimizer = self.load_dict.get("optimizer")
        if optimizer is None:
            return
        saved = checkpoint.get("optimizer", {}).get("param_groups")
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

    @staticmethod
    def _check_epochs(path: str, saved_trainer: Mapping, max_epochs: int | None) -> None:
        """Refuse a resume to fewer epochs than the checkpoint has done (MONAI would say "construct trainer ...")."""
        length = saved_trainer.get("epoch_length")
        if not max_epochs or not length or "iteration" not in saved_trainer:
            return
        done = int(saved_trainer["iteration"]) // int(length)
        if done > max_epochs:
            raise UserInputError(
                f"resume: {path} is from epoch {done}, past this run's {max_epochs} epochs; pass --epochs {done} or "
                "more to continue that run, or --resume False (with --overwrite True) to train from scratch."
            )

    @staticmethod
    def _continue_with_full_epochs(engine: Engine, epoch_length: int | None, saved_world_size: int | None) -> None:
        """Make the restored engine run full epochs of ``epoch_length`` iterations (this run's) after the saved epoch.

        ignite restores the checkpoint's ``epoch_length`` and iteration count: resumed with another number of
        processes (or batch size, or training set), each epoch would run the saved run's number of iterations, not
        this run's (8 of 15 when a 2-process checkpoint is resumed in one process). The epoch reached stays; the
        iteration count becomes that many epochs of this run's length.
        """
        saved_length, now = engine.state.epoch_length, world_size()
        if epoch_length is None or saved_length is None:
            return  # data of unknown length: ignite's own resume
        if saved_length == epoch_length and saved_world_size in (None, now):
            return
        engine.state.epoch_length = epoch_length
        engine.state.iteration = engine.state.epoch * epoch_length
        processes = f"{saved_world_size} process(es)" if saved_world_size else "an unrecorded number of processes"
        logger.warning(
            f"resume: the checkpoint was trained by {processes} with {saved_length} iteration(s) per epoch, this run "
            f"has {now} process(es) with {epoch_length} (another number of processes, batch size or training set); "
            f"it continues after epoch {engine.state.epoch} with full epochs of {epoch_length} iteration(s)."
        )
