"""Training-log and validation handlers of the bundles: one line per epoch, validation at the last epoch too.

- :class:`ValidateAtIntervalAndEnd` is MONAI's ``ValidationHandler`` that also validates after the final epoch, so
  that ``--epochs 1`` (or any ``epochs`` that is not a multiple of ``val_interval``) still saves ``models/model.pt``.
- :class:`EpochLossLogger` (MONAI's ``StatsHandler`` with an ignite ``Average`` of the loss) logs one INFO line per
  epoch (mean loss, learning rate, time) and each iteration's loss at DEBUG, instead of per-iteration INFO lines.
- :class:`ValidationLogger` logs one INFO line per validation, naming the training epoch it follows and the best
  epoch so far; the final evaluation of a trained model is reported by
  :func:`~monai_iunet.brats.summary.print_run_summary` instead.
- :func:`quiet_fresh_start` drops ignite's "Engine run resuming from iteration 0, epoch 0" on a run that starts
  from scratch (ignite logs it whenever an engine's state already has ``max_epochs``, as MONAI's engines do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.exceptions import NotComputableError
from ignite.metrics import Average
from monai.handlers import StatsHandler, ValidationHandler

__all__ = ["EpochLossLogger", "ValidateAtIntervalAndEnd", "ValidationLogger", "output_loss", "quiet_fresh_start"]

logger = logging.getLogger("monai_iunet.train")


class ValidateAtIntervalAndEnd(ValidationHandler):
    """``monai.handlers.ValidationHandler`` (epoch level) that validates every ``interval`` epochs and after the last.

    Args:
        interval: validate every ``interval`` epochs (the bundle's ``val_interval``).
        validator: the evaluator to run.
        kwargs: other arguments of ``ValidationHandler`` (``exec_at_start``).
    """

    def __init__(self, interval: int, validator: Any = None, **kwargs: Any) -> None:
        super().__init__(interval=interval, validator=validator, epoch_level=True, **kwargs)

    def attach(self, engine: Engine) -> None:
        def due(engine: Engine, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch == engine.state.max_epochs

        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=due), self)
        if self.exec_at_start:
            engine.add_event_handler(Events.STARTED, self)


def _scalar(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def output_loss(output: Any, key: str = "loss") -> float | None:
    """The scalar loss in an engine's output (a dict, MONAI's list of one dict per sample, or the loss itself), or
    ``None`` when it holds none."""
    if isinstance(output, (list, tuple)) and output:
        output = output[0]
    value = output.get(key) if isinstance(output, Mapping) else output
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    return float(value) if isinstance(value, (int, float)) else None


class _ProcessAverage(Average):
    """ignite ``Average`` of this process's values only: no ``all_reduce`` across ranks in ``compute``.

    Multi-GPU training attaches the loss logger on rank 0 only, so a collective there would wait for ranks that never
    join it.
    """

    def compute(self) -> float:
        if self.num_examples < 1:
            raise NotComputableError("the mean loss needs at least one iteration")
        return _scalar(self.accumulator) / self.num_examples


class EpochLossLogger(StatsHandler):
    """MONAI ``StatsHandler`` logging each epoch's mean loss (ignite ``Average`` over this process's iterations),
    learning rate and time at INFO, and each iteration's loss at DEBUG, on the logger ``monai_iunet.train``.

    The epoch's mean loss is also the engine's metric ``mean_train_loss`` (so TensorBoard handlers see it).

    Args:
        optimizer: the trainer's optimizer, for the learning rate (optional).
        loss_key: key of the loss in ``engine.state.output`` (a dict, or a list of dicts per sample).
    """

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, loss_key: str = "loss") -> None:
        self.optimizer = optimizer
        self.loss_key = loss_key
        self.mean_loss = _ProcessAverage(output_transform=self._loss)
        self._start = 0.0
        super().__init__(
            iteration_print_logger=self._log_iteration,
            epoch_print_logger=self._log_epoch,
            output_transform=self._loss,
            name=logger.name,
            tag_name="train_loss",
        )
        # MONAI's get_logger made the logger INFO-only and stopped it from propagating: the bundle's logging.conf
        # (and the caller's level) decide, as for every other logger
        self.logger.setLevel(logging.NOTSET)
        self.logger.propagate = True

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        self.mean_loss.attach(engine, "mean_train_loss")  # before the epoch line, which reads it
        super().attach(engine)

    def _loss(self, output: Any) -> float:
        loss = output_loss(output, self.loss_key)
        if loss is None:
            raise ValueError(f"the trainer's output holds no scalar {self.loss_key!r} to log.")
        return loss

    def _epoch_started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def _log_iteration(self, engine: Engine) -> None:
        loss = self._loss(engine.state.output)
        self.logger.debug(f"epoch {engine.state.epoch} iteration {engine.state.iteration}: train_loss {loss:.6f}")

    def _log_epoch(self, engine: Engine) -> None:
        lr = f", lr {self.optimizer.param_groups[0]['lr']:.3g}" if self.optimizer is not None else ""
        self.logger.info(
            f"epoch {engine.state.epoch}/{engine.state.max_epochs}: mean train_loss "
            f"{engine.state.metrics['mean_train_loss']:.6f} over {self.mean_loss.num_examples} iterations{lr}, "
            f"{time.perf_counter() - self._start:.1f} s"
        )


class ValidationLogger:
    """Log one line per validation: the training epoch it follows, its metrics, and the best epoch so far.

    Args:
        key_metric: name of the key metric (``val_mean_dice``).
    """

    def __init__(self, key_metric: str = "val_mean_dice") -> None:
        self.key_metric = key_metric
        self.enabled = True  # False for a final evaluation, which the run summary reports

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        quiet_fresh_start(engine, every_resume=True)  # an evaluator "resumes" at every validation

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        metrics = ", ".join(f"{k} {_scalar(v):.4f}" for k, v in engine.state.metrics.items() if _is_number(v))
        best = getattr(engine.state, "best_metric", None)
        best_epoch = getattr(engine.state, "best_metric_epoch", -1)
        best_text = f"; best {self.key_metric} {best:.4f} after epoch {best_epoch}" if best_epoch > 0 else ""
        logger.info(f"validation after epoch {engine.state.epoch}: {metrics}{best_text}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)


class _DropResumeMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_fresh_start(engine: Engine, every_resume: bool = False) -> Engine:
    """Drop ignite's "Engine run resuming from iteration 0, epoch 0 ..." line from ``engine``'s log; returns it.

    With ``every_resume``, drop every "Engine run resuming ..." line (an evaluator's, which MONAI starts at the
    trainer's epoch).
    """
    prefix = "Engine run resuming from" if every_resume else "Engine run resuming from iteration 0, epoch 0"
    if not any(isinstance(f, _DropResumeMessage) and f.prefix == prefix for f in engine.logger.filters):
        engine.logger.addFilter(_DropResumeMessage(prefix))
    return engine
