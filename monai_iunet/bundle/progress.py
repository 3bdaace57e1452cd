"""A progress bar over an ignite engine's run, with the time left for the whole run (:class:`RunProgressBar`).

ignite's own ``ProgressBar`` draws one bar per epoch, so its time left is the epoch's; a training run wants the
run's. This handler draws one tqdm bar over every iteration still to run (a resumed run counts from where it
resumed), with the epoch and the loss beside it, through :func:`monai_iunet.progress.progress_bar`: only when
stderr is a terminal, unless ``MONAI_IUNET_PROGRESS`` says otherwise. While it is drawn, log records go through
``tqdm.write`` (:func:`~monai_iunet.progress.logging_beside_bars`), so the bundle's one line per epoch still
appears, above the bar.
"""

from __future__ import annotations

import contextlib

from ignite.engine import Engine, Events

from monai_iunet.bundle.handlers import output_loss
from monai_iunet.progress import progress_enabled, showing_progress

__all__ = ["RunProgressBar"]


class RunProgressBar:
    """ignite handler: one bar over the iterations of each run of the engine, with the time left for the run.

    The bar counts the iterations still to run: ``(max_epochs - epoch) * epoch_length`` at ``STARTED`` (a resumed
    trainer, or a MONAI evaluator run at a training epoch, counts only what it will do). It is closed when the run
    completes or is terminated, and at the start of the next run if the previous one raised. Attach it after the
    handlers that restore a checkpoint at ``STARTED``.

    Args:
        desc: what the run does, shown before the bar (``"train"``, ``"validate"``).
        unit: what one iteration is (``"batch"``, ``"case"``).
        loss_key: key of the loss in ``engine.state.output``, shown beside the bar (when there is one).
        show_epoch: show the epoch beside the bar (``False`` for an evaluator, whose "epoch" is the trainer's).
        progress: ``None`` (``MONAI_IUNET_PROGRESS``, else only at a terminal), ``"on"``/``"off"``/``"auto"`` or a
            bool (:func:`~monai_iunet.progress.progress_enabled`); decided when the handler is attached.
    """

    def __init__(
        self,
        desc: str = "",
        unit: str = "it",
        loss_key: str = "loss",
        show_epoch: bool = True,
        progress: bool | str | None = None,
    ) -> None:
        self.desc = desc
        self.show_epoch = show_epoch
        self.unit = unit
        self.loss_key = loss_key
        self.progress = progress
        self.bar = None
        self._shown = contextlib.ExitStack()

    def attach(self, engine: Engine) -> None:
        """Draw the bar during ``engine``'s runs, if bars are drawn at all (nothing is attached otherwise)."""
        if not progress_enabled(self.progress):
            return
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._advance)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.TERMINATE, self._close)

    def _open(self, engine: Engine) -> None:
        self._close(engine)
        state = engine.state
        known = state.epoch_length is not None and state.max_epochs is not None  # not for a run by max_iters
        total = (state.max_epochs - state.epoch) * state.epoch_length if known else None
        shown = showing_progress(total=total, desc=self.desc, unit=self.unit, progress=True, leave=False)
        self.bar = self._shown.enter_context(shown)

    def _advance(self, engine: Engine) -> None:
        if self.bar is None:
            return
        state = engine.state
        postfix = f"epoch {state.epoch}/{state.max_epochs or '?'}" if self.show_epoch else ""
        loss = output_loss(state.output, self.loss_key)
        postfix += f", {self.loss_key} {loss:.4f}" if loss is not None else ""
        self.bar.set_postfix_str(postfix.lstrip(", "), refresh=False)
        self.bar.update()

    def _close(self, engine: Engine | None = None) -> None:
        self.bar = None
        self._shown.close()
