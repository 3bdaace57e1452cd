"""A second training run does not replace a trained model; a resume to another --epochs says which one finishes it."""

from __future__ import annotations

import json

import pytest
import torch

from monai_iunet.bundle import check_training_run
from monai_iunet.errors import OutputExistsError, UserInputError


def _trained(ckpt_dir, t_max: int = 2) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(2, 1)
    torch.save(model.state_dict(), ckpt_dir / "model.pt")
    (ckpt_dir / "model.pt.json").write_text(json.dumps({"epoch": 2, "metric_name": "val_mean_dice", "metric": 0.38}))
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max)
    torch.save(
        {"model": model.state_dict(), "lr_scheduler": scheduler.state_dict()}, ckpt_dir / "checkpoint_epoch=2.pt"
    )


def test_fresh_run_refuses_to_replace_a_trained_model(tmp_path):
    _trained(tmp_path / "models")
    with pytest.raises(OutputExistsError, match=r"model.pt already holds a trained model \(epoch 2.*--overwrite True"):
        check_training_run(tmp_path / "models", epochs=2)
    check_training_run(tmp_path / "models", epochs=2, overwrite=True)
    check_training_run(tmp_path / "fresh", epochs=2)  # nothing trained there yet


def test_resume_to_more_epochs_names_the_epochs_that_finish_the_run(tmp_path):
    _trained(tmp_path / "models", t_max=2)
    with pytest.raises(UserInputError, match=r"schedule of 2 epochs, but --epochs is 3.*--epochs 2"):
        check_training_run(tmp_path / "models", epochs=3, resume=True)
    check_training_run(tmp_path / "models", epochs=2, resume=True)  # finishing the run is fine
