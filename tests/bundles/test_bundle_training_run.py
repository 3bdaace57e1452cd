"""A second training run does not replace a trained model; a resume to more epochs stretches the schedule, one with
another number of processes runs full epochs, and the best model's epoch is the same in the log and its record."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from monai_iunet.bundle import AtomicCheckpointSaver, LatestCheckpointLoader, check_training_run
from monai_iunet.data import generate_synthetic_brats
from monai_iunet.errors import OutputExistsError, UserInputError

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet" / "configs"


def _trained(ckpt_dir, epochs: int = 2, lr: float = 0.003) -> None:
    """A finished run of ``epochs`` with a cosine schedule: model.pt, its record, the last epoch checkpoint."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # the schedule has ended
    engine = Engine(lambda e, b: None)
    engine.state.epoch, engine.state.max_epochs, engine.state.iteration = epochs, epochs, epochs
    engine.state.epoch_length = 1
    torch.save(model.state_dict(), ckpt_dir / "model.pt")
    (ckpt_dir / "model.pt.json").write_text(json.dumps({"epoch": 2, "metric": "val_mean_dice", "value": 0.38}))
    state = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": engine}
    torch.save({k: v.state_dict() for k, v in state.items()}, ckpt_dir / f"checkpoint_epoch={epochs}.pt")


def test_fresh_run_refuses_to_replace_a_trained_model(tmp_path):
    _trained(tmp_path / "models")
    message = r"model.pt already holds a trained model \(epoch 2, val_mean_dice 0.3800\).* add --overwrite True"
    with pytest.raises(OutputExistsError, match=message):
        check_training_run(tmp_path / "models")
    check_training_run(tmp_path / "models", overwrite=True)
    check_training_run(tmp_path / "models", resume=True)
    check_training_run(tmp_path / "fresh")  # nothing trained there yet


def test_resume_to_more_epochs_stretches_the_cosine_schedule(tmp_path):
    _trained(tmp_path / "models", epochs=2, lr=0.003)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = 4
    load = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler}
    LatestCheckpointLoader(str(tmp_path / "models"), load, engine_key="trainer").attach(engine)
    assert engine.state.epoch == 2 and scheduler.T_max == 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0015)  # halfway down a 4-epoch cosine, not 0
    lrs = []
    for _ in range(2):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.003 * (1 - 2**-0.5) / 2)  # epoch 3 of 4: (1 + cos(3π/4)) / 2
    assert lrs[1] == pytest.approx(0.0, abs=1e-12)  # and the schedule ends at the new last epoch


@pytest.mark.slow
def test_rerunning_the_main_job_says_in_one_line_how_to_run_again(tmp_path):
    """README command 1 run again in the same folder: exit 2 and one sentence naming --overwrite True, before any
    training (the trained model and its record are untouched)."""
    _trained(tmp_path / "models")
    before = {p.name: p.read_bytes() for p in (tmp_path / "models").iterdir()}
    data = tmp_path / "data"
    generate_synthetic_brats(data, num_cases=4, spatial_size=(20, 20, 20))
    configs = str([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    command = [sys.executable, "-m", "monai_iunet.cli", "run", "train_and_evaluate", "--config_file", configs]
    command += ["--bundle_root", str(tmp_path), "--dataset_dir", str(data), "--num_workers", "0"]
    command += ["--inference_config", str(CONFIGS / "inference.json"), "--network_def#channels", "[8, 16]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "already holds a trained model (epoch 2, val_mean_dice 0.3800)" in errors[0]
    assert "to run again, add --overwrite True" in errors[0]
    assert {p.name: p.read_bytes() for p in (tmp_path / "models").iterdir()} == before


def test_a_run_that_starts_from_the_model_may_replace_it(tmp_path):
    """MONAI Label's train task fine-tunes model.pt in place: it adds a CheckpointLoader of it to train#handlers."""
    _trained(tmp_path / "models")
    loader = {"_target_": "CheckpointLoader", "load_path": str(tmp_path / "models" / "model.pt"), "load_dict": {}}
    check_training_run(tmp_path / "models", handlers=[loader, {"_target_": "LrScheduleHandler"}])
    other = {**loader, "load_path": str(tmp_path / "elsewhere.pt")}
    with pytest.raises(OutputExistsError):
        check_training_run(tmp_path / "models", handlers=[other])


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
