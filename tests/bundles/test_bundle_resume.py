"""Resuming and epoch-level logging: checkpoints do not pile up, the resume is announced right, the last epoch is
validated, a new learning rate given on resume is not ignored silently, another number of processes gets full epochs,
and a resumed evaluator names the saved best model's epoch."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from ignite.engine import Engine, Events

from monai_iunet.bundle import (
    AtomicCheckpointSaver,
    EpochLossLogger,
    LatestCheckpointLoader,
    ValidateAtIntervalAndEnd,
    quiet_fresh_start,
)
from monai_iunet.errors import UserInputError


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


def _epoch_checkpoint(ckpt_dir, epochs_done: int, epoch_length: int, world_size: int) -> None:
    """The interval checkpoint of a run of ``world_size`` processes, ``epochs_done`` epochs of ``epoch_length``."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(2, 1)
    trainer = {"epoch_length": epoch_length, "iteration": epochs_done * epoch_length, "max_epochs": epochs_done}
    state = {"model": model.state_dict(), "trainer": {**trainer, "world_size": world_size}}
    torch.save(state, ckpt_dir / f"checkpoint_epoch={epochs_done}.pt")


def test_resume_with_another_number_of_processes_runs_full_epochs(tmp_path, caplog):
    """A 2-process checkpoint (2 iterations per epoch) resumed in one process (4): epochs 3 and 4 run 4 each."""
    _epoch_checkpoint(tmp_path, epochs_done=2, epoch_length=2, world_size=2)
    model = torch.nn.Linear(2, 1)
    seen = []
    engine = Engine(lambda e, batch: seen.append((e.state.epoch, e.state.iteration)))
    data = [torch.zeros(2)] * 4
    engine.state.max_epochs, engine.state.epoch_length = 4, len(data)  # as MONAI's workflows set them
    with caplog.at_level(logging.WARNING):
        LatestCheckpointLoader(str(tmp_path), {"model": model}, engine_key="trainer").attach(engine)
    assert "trained by 2 process(es) with 2 iteration(s) per epoch, this run has 1 process(es) with 4" in caplog.text
    assert engine.state.epoch == 2 and engine.state.iteration == 8
    engine.run(data, max_epochs=4)
    assert [epoch for epoch, _ in seen] == [3] * 4 + [4] * 4
    assert engine.state.iteration == 16


def test_resume_to_fewer_epochs_than_done_is_refused(tmp_path):
    _epoch_checkpoint(tmp_path, epochs_done=3, epoch_length=2, world_size=1)
    engine = Engine(lambda e, batch: None)
    engine.state.max_epochs, engine.state.epoch_length = 2, 2
    with pytest.raises(UserInputError, match=r"is from epoch 3, past this run's 2 epochs; pass --epochs 3 or more"):
        LatestCheckpointLoader(str(tmp_path), {"model": torch.nn.Linear(2, 1)}).attach(engine)


def _evaluator(scores) -> Engine:
    """An engine scoring ``dice`` per epoch and tracking the best score and epoch as MONAI's ``Workflow`` does."""
    evaluator = Engine(lambda e, batch: None)
    evaluator.state.best_metric, evaluator.state.best_metric_epoch = -1, -1

    @evaluator.on(Events.EPOCH_COMPLETED)
    def score(engine):
        engine.state.metrics["dice"] = scores[engine.state.epoch - 1]
        if engine.state.best_metric_epoch == -1 or engine.state.metrics["dice"] > engine.state.best_metric:
            engine.state.best_metric, engine.state.best_metric_epoch = engine.state.metrics["dice"], engine.state.epoch

    return evaluator


def _best_model_saver(ckpt_dir) -> AtomicCheckpointSaver:
    model = torch.nn.Linear(2, 1)
    return AtomicCheckpointSaver(
        str(ckpt_dir), {"model": model}, save_key_metric=True, key_metric_name="dice", key_metric_filename="model.pt"
    )


def test_a_resumed_evaluator_continues_from_the_saved_best_epoch(tmp_path):
    """The resumed evaluator knows the best score and its epoch, as the best-model saver does: a validation that only
    ties the best (the resumed run of issue 23 at learning rate 0) leaves the best epoch, in the log and in
    ``model.pt.json``, at the saved model's."""
    scores = [0.5, 0.7, 0.7]  # epochs 1, 2 (the best model), 3 (resumed, ties the best)
    first, saver = _evaluator(scores), _best_model_saver(tmp_path)
    saver.attach(first)
    first.run([0], max_epochs=2)
    assert json.loads((tmp_path / "model.pt.json").read_text()) == {"epoch": 2, "metric": "dice", "value": 0.7}
    state = saver.state_dict()
    assert state["best_epoch"] == 2

    resumed, again = _evaluator(scores), _best_model_saver(tmp_path)
    again.attach(resumed)
    again.load_state_dict(state)
    assert (resumed.state.best_metric, resumed.state.best_metric_epoch) == (0.7, 2)
    resumed.load_state_dict({"epoch": 2, "epoch_length": 1, "max_epochs": 2})
    resumed.run([0], max_epochs=3)
    assert resumed.state.best_metric_epoch == 2  # what the ValidationLogger's line names
    assert json.loads((tmp_path / "model.pt.json").read_text())["epoch"] == 2

    legacy = {k: v for k, v in state.items() if k != "best_epoch"}  # a checkpoint from before best_epoch: the record
    older, loaded = _evaluator(scores), _best_model_saver(tmp_path)
    loaded.load_state_dict(legacy)
    loaded.attach(older)  # restored before being attached: shared on attach
    assert (older.state.best_metric, older.state.best_metric_epoch) == (0.7, 2)
