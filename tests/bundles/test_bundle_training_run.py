"""A second training run does not replace a trained model (and says in one line how to run again); a resume to more
epochs stretches the schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from monai_iunet.bundle import LatestCheckpointLoader, check_training_run
from monai_iunet.data import generate_synthetic_brats
from monai_iunet.errors import OutputExistsError

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
