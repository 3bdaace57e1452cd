"""A second training run does not replace a trained model; a resume to more epochs stretches the schedule."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine

from monai_iunet.bundle import LatestCheckpointLoader, check_training_run
from monai_iunet.errors import OutputExistsError


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
    (ckpt_dir / "model.pt.json").write_text(json.dumps({"epoch": 2, "metric_name": "val_mean_dice", "metric": 0.38}))
    state = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": engine}
    torch.save({k: v.state_dict() for k, v in state.items()}, ckpt_dir / f"checkpoint_epoch={epochs}.pt")


def test_fresh_run_refuses_to_replace_a_trained_model(tmp_path):
    _trained(tmp_path / "models")
    with pytest.raises(OutputExistsError, match=r"model.pt already holds a trained model \(epoch 2.*--overwrite True"):
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


def test_a_run_that_starts_from_the_model_may_replace_it(tmp_path):
    """MONAI Label's train task fine-tunes model.pt in place: it adds a CheckpointLoader of it to train#handlers."""
    _trained(tmp_path / "models")
    loader = {"_target_": "CheckpointLoader", "load_path": str(tmp_path / "models" / "model.pt"), "load_dict": {}}
    check_training_run(tmp_path / "models", handlers=[loader, {"_target_": "LrScheduleHandler"}])
    other = {**loader, "load_path": str(tmp_path / "elsewhere.pt")}
    with pytest.raises(OutputExistsError):
        check_training_run(tmp_path / "models", handlers=[other])
