"""Resuming and epoch-level logging: checkpoints do not pile up, the resume is announced right, the last epoch is
validated, a new learning rate given on resume is not ignored silently."""

from __future__ import annotations

import logging
import os

import torch
from ignite.engine import Engine, Events

from monai_iunet.bundle import (
    AtomicCheckpointSaver,
    EpochLossLogger,
    LatestCheckpointLoader,
    ValidateAtIntervalAndEnd,
    quiet_fresh_start,
)


def _trainer(max_epochs: int, lr: float = 0.1) -> tuple[Engine, torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    def step(engine, batch):
        optimizer.zero_grad()
        loss = model(batch).pow(2).mean()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    engine = Engine(step)
    engine.state.max_epochs = max_epochs
    return engine, model, optimizer


def _run_session(ckpt_dir, epochs: int, lr: float = 0.1) -> Engine:
    """One process of a resumable run: resume from the newest checkpoint, train to ``epochs``, save each epoch."""
    engine, model, optimizer = _trainer(epochs, lr)
    load_dict = {"model": model, "optimizer": optimizer}
    LatestCheckpointLoader(str(ckpt_dir), load_dict, engine_key="trainer").attach(engine)
    saver = AtomicCheckpointSaver(str(ckpt_dir), load_dict, engine_key="trainer", save_interval=1, n_saved=2)
    saver.attach(engine)
    engine.run([torch.randn(3, 2)] * 2, max_epochs=epochs)
    return engine


def test_repeated_resumes_keep_n_saved_checkpoints(tmp_path):
    for epochs in range(1, 7):  # six processes, each resuming and training one more epoch
        engine = _run_session(tmp_path, epochs)
        assert engine.state.epoch == epochs
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=5.pt", "checkpoint_epoch=6.pt"]


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    _run_session(tmp_path, 2)
    before = {name: (tmp_path / name).stat().st_mtime_ns for name in os.listdir(tmp_path)}
    _run_session(tmp_path, 2)
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in os.listdir(tmp_path)} == before  # nothing rewritten


def test_resume_is_loaded_before_the_run_and_fresh_runs_say_nothing(tmp_path, caplog):
    _run_session(tmp_path, 2)
    engine, model, optimizer = _trainer(3)
    with caplog.at_level(logging.INFO):
        LatestCheckpointLoader(str(tmp_path), {"model": model, "optimizer": optimizer}).attach(engine)
    assert engine.state.epoch == 2  # loaded now, so ignite's "resuming from ... epoch 2" is right
    assert "epoch 2 of 3 done" in caplog.text

    fresh, _, _ = _trainer(1)
    LatestCheckpointLoader(str(tmp_path / "none"), {}, enabled=False).attach(fresh)
    record = logging.LogRecord(
        "x", logging.INFO, "", 0, "Engine run resuming from iteration 0, epoch 0 until 1", None, None
    )
    assert not all(f.filter(record) for f in fresh.logger.filters)
    quiet_fresh_start(fresh)  # idempotent
    assert len(fresh.logger.filters) == 1


def test_new_learning_rate_on_resume_is_warned_about(tmp_path, caplog):
    _run_session(tmp_path, 1, lr=0.1)
    engine, model, optimizer = _trainer(2, lr=0.5)
    with caplog.at_level(logging.WARNING):
        LatestCheckpointLoader(str(tmp_path), {"model": model, "optimizer": optimizer}).attach(engine)
    assert "learning rate 0.5 given now is ignored" in caplog.text and "0.1" in caplog.text
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_last_epoch_is_always_validated(caplog):
    validated = []

    class Validator:
        def run(self, epoch):
            validated.append(epoch)

    engine, _, optimizer = _trainer(5)
    handler = ValidateAtIntervalAndEnd(interval=4)
    handler.validator = Validator()  # any object with run(epoch); MONAI's constructor insists on an Evaluator
    handler.attach(engine)
    EpochLossLogger(optimizer).attach(engine)
    with caplog.at_level(logging.DEBUG, logger="monai_iunet.train"):
        engine.run([torch.randn(3, 2)] * 3, max_epochs=5)
    assert validated == [4, 5]
    epoch_lines = [r for r in caplog.records if r.levelno == logging.INFO and "mean train_loss" in r.getMessage()]
    iteration_lines = [r for r in caplog.records if r.levelno == logging.DEBUG and "iteration" in r.getMessage()]
    assert len(epoch_lines) == 5 and len(iteration_lines) == 15
    assert epoch_lines[0].getMessage().startswith("epoch 1/5: mean train_loss ")


def test_validation_handler_fires_once_when_last_epoch_is_an_interval():
    calls = []

    class Validator:
        def run(self, epoch):
            calls.append(epoch)

    engine, _, _ = _trainer(4)
    handler = ValidateAtIntervalAndEnd(interval=2)
    handler.validator = Validator()
    handler.attach(engine)
    engine.add_event_handler(Events.COMPLETED, lambda e: None)
    engine.run([torch.randn(3, 2)], max_epochs=4)
    assert calls == [2, 4]
