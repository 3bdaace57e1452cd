"""Generic helpers of the bundle configs: atomic checkpoints, resume, safe outputs, broken-case reports."""

from __future__ import annotations

import json
import os

import pytest
import torch
from ignite.engine import Engine, Events

from monai_iunet.bundle import (
    AtomicCheckpointSaver,
    LatestCheckpointLoader,
    check_no_predictions,
    latest_checkpoint,
    report_broken_cases,
)
from monai_iunet.data import BrokenCaseError


def _engine(max_epochs: int = 3) -> tuple[Engine, torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(engine, batch):
        optimizer.zero_grad()
        loss = model(batch).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    engine = Engine(step)
    engine.state.max_epochs = max_epochs
    return engine, model, optimizer


def test_interval_checkpoints_are_atomic_and_carry_the_engine(tmp_path, monkeypatch):
    engine, model, optimizer = _engine()
    saver = AtomicCheckpointSaver(
        str(tmp_path), {"model": model, "optimizer": optimizer}, engine_key="trainer", save_interval=1, n_saved=2
    )
    saver.attach(engine)
    data = [torch.randn(4, 2)] * 2
    engine.run(data, max_epochs=2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    saved = torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=True)
    assert saved["trainer"]["iteration"] == 4 and saved["trainer"]["epoch_length"] == 2  # i.e. epoch 2
    assert torch.equal(saved["model"]["weight"], model.weight.detach())

    # a save killed half-way leaves no truncated file under a checkpoint name
    def failing_save(obj, f, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        engine.run(data, max_epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=2.pt"]  # epoch 1 rotated out, epoch 3 never appeared
    assert torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=True)["trainer"]["iteration"] == 4


def test_best_model_is_replaced_never_removed(tmp_path, monkeypatch):
    engine, model, _ = _engine()
    saver = AtomicCheckpointSaver(str(tmp_path), {"model": model}, save_key_metric=True, key_metric_filename="model.pt")
    scores = iter([0.1, 0.5, 0.9])
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=next(scores)))
    engine.state.key_metric_name = "dice"
    saver.attach(engine)
    calls = []
    original_save = torch.save

    def recording_save(obj, f, **kwargs):
        calls.append(os.listdir(tmp_path))  # what is on disk while a new best model is written
        original_save(obj, f, **kwargs)

    monkeypatch.setattr(torch, "save", recording_save)
    engine.run([torch.randn(4, 2)], max_epochs=3)
    assert len(calls) == 3
    assert all("model.pt" in listing for listing in calls[1:])  # the previous best stays until replaced
    assert sorted(name for name in os.listdir(tmp_path) if not name.startswith("tmp")) == ["model.pt", "model.pt.json"]
    record = json.loads((tmp_path / "model.pt.json").read_text())
    assert record == {"epoch": 3, "metric": "dice", "value": 0.9}  # the epoch the saved model is from


def test_best_metric_record_survives_resume(tmp_path):
    engine, model, _ = _engine()
    saver = AtomicCheckpointSaver(str(tmp_path), {"model": model}, save_key_metric=True, key_metric_filename="model.pt")
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=0.9))
    engine.state.key_metric_name = "dice"
    saver.attach(engine)
    engine.run([torch.randn(4, 2)], max_epochs=1)
    state = saver.state_dict()
    assert [item[0] for item in state["_saved"]] == [0.9]

    resumed, new_model, _ = _engine()
    new_saver = AtomicCheckpointSaver(
        str(tmp_path), {"model": new_model}, save_key_metric=True, key_metric_filename="model.pt"
    )
    new_saver.load_state_dict(state)
    resumed.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=0.5))
    resumed.state.key_metric_name = "dice"
    new_saver.attach(resumed)
    with torch.no_grad():
        new_model.weight.fill_(123.0)
    resumed.run([torch.randn(4, 2)], max_epochs=1)
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(kept["weight"], model.weight.detach())  # a worse model did not replace the best one


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    for name in ("checkpoint_epoch=2.pt", "checkpoint_epoch=10.pt", "model.pt", "tmpabc", "checkpoint_epoch=3.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=10.pt")


def test_resume_restores_epoch_model_and_optimizer(tmp_path):
    engine, model, optimizer = _engine()
    saver = AtomicCheckpointSaver(
        str(tmp_path), {"model": model, "optimizer": optimizer}, engine_key="trainer", save_interval=1, n_saved=2
    )
    saver.attach(engine)
    data = [torch.randn(4, 2)] * 2
    engine.run(data, max_epochs=2)

    resumed, new_model, new_optimizer = _engine()
    epochs_run = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    LatestCheckpointLoader(str(tmp_path), {"model": new_model, "optimizer": new_optimizer}).attach(resumed)
    resumed.add_event_handler(
        Events.STARTED, lambda e: epochs_run.append(("weights equal", torch.equal(new_model.weight, model.weight)))
    )
    resumed.run(data, max_epochs=4)
    assert epochs_run == [("weights equal", True), 3, 4]  # continues after the saved epoch 2, to max_epochs
    assert new_optimizer.state_dict()["param_groups"][0]["lr"] == 0.1

    fresh, _, _ = _engine()
    LatestCheckpointLoader(str(tmp_path / "none"), {}).attach(fresh)  # nothing to resume: trains from scratch
    LatestCheckpointLoader(str(tmp_path), {}, enabled=False).attach(fresh)
    fresh.run(data, max_epochs=1)
    assert fresh.state.epoch == 1


def test_check_no_predictions(tmp_path):
    items = [{"case": "a"}, {"case": "b"}]
    check_no_predictions(tmp_path, items)  # nothing there yet
    (tmp_path / "b_seg.nii.gz").write_bytes(b"")
    with pytest.raises(FileExistsError, match=r"1 prediction\(s\) already exist.*b_seg\.nii\.gz.*--overwrite True"):
        check_no_predictions(tmp_path, items)
    with pytest.raises(FileExistsError):
        check_no_predictions(tmp_path, items, overwrite="false")  # `--overwrite false` on the command line
    check_no_predictions(tmp_path, items, overwrite=True)
    check_no_predictions(tmp_path, items, overwrite="true")


def test_report_broken_cases():
    report_broken_cases([])
    with pytest.raises(BrokenCaseError, match="(?s)skipped 2 broken case.*case a: x.*case b: y"):
        report_broken_cases(["case a: x", "case b: y"])
