"""The CT post-processing bundle: identity initialisation, one epoch of training on tiny data, evaluation, inference."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_iunet.bundle import load_model_weights

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "ct_postprocessing_iunet"
TINY_DATASET = "{'num_train': 2, 'num_val': 1, 'num_test': 1, 'spatial_size': 16, 'num_angles': 8, 'seed': 0}"


def _run_bundle(configs: list[str], *overrides: str) -> subprocess.CompletedProcess:
    config_file = configs[0] if len(configs) == 1 else str(configs)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file]
    cmd += ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf", *overrides]
    # one thread: much faster than two on a shared CI machine; progress bars drawn into the pipe (tested below)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MONAI_IUNET_PROGRESS": "on"}
    result = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A bundle root after ``train_and_evaluate`` with one epoch on a generated tiny dataset."""
    root = tmp_path_factory.mktemp("ct_bundle")
    common = ["--bundle_root", str(root), "--dataset_dir", str(root / "data"), "--num_workers", "0"]
    result = _run_bundle(
        ["configs/train.json", "configs/evaluate.json"],
        "--run_id",
        "train_and_evaluate",
        "--epochs",
        "1",
        "--val_interval",
        "1",
        "--patch_size",
        "[16, 16, 16]",
        "--default_dataset",
        TINY_DATASET,
        *common,
    )
    return root, result.stdout + result.stderr


def test_network_starts_as_the_identity():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.parse()
    net = parser.get_parsed_content("network_def")
    assert type(net).__name__ == "IUNet" and net.core.channels[0] == 8  # the channel blowup
    x = torch.rand(1, 1, 16, 16, 16)
    assert not torch.allclose(net(x), x, atol=1e-2)  # the lifting and projection are random at construction
    parser.get_parsed_content("identity_init")
    with torch.no_grad():
        torch.testing.assert_close(net(x), x, atol=1e-5, rtol=1e-5)
    assert isinstance(parser.get_parsed_content("loss"), torch.nn.MSELoss)


def test_runs_show_bars_with_time_left_and_one_line_per_epoch(trained):
    """As the BraTS bundle: a bar over the whole training run, validation and evaluation, the epoch's mean loss at
    INFO, and no line per iteration."""
    _, log = trained
    for what, unit in (("train", "batch"), ("validate", "case"), ("evaluate", "case")):
        assert re.search(rf"{what}: .*\d+/\d+ \[\d\d:\d\d<\d\d:\d\d", log), what
        assert unit in log
    assert re.search(r"epoch 1/1: mean train_loss [0-9.]+ over 2 iterations", log)
    assert "Epoch[1] Iteration" not in log  # MONAI's StatsHandler line per iteration is gone


def test_train_one_epoch_and_evaluate(trained):
    root, log = trained
    datalist = json.loads((root / "data" / "dataset.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [2, 1, 1]
    assert "val_psnr" in log and "val_ssim" in log
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert "lift.weight" in state and "project.weight" in state
    with open(root / "eval" / "metrics.csv") as f:
        metrics = {name: float(value) for name, value in csv.reader(f)}
    assert set(metrics) == {"test_psnr", "test_ssim", "test_fbp_psnr", "test_fbp_ssim"}
    # one epoch from the identity: the restoration is still close to its FBP input, and both are far from perfect
    assert 5.0 < metrics["test_fbp_psnr"] < 30.0 and 0.1 < metrics["test_fbp_ssim"] < 0.99
    assert abs(metrics["test_psnr"] - metrics["test_fbp_psnr"]) < 3.0


def _zoo_refuses(paths: list[Path], max_kb: int = 1024) -> list[str]:
    """The files the MONAI Model Zoo's pre-commit hook ``check-added-large-files --maxkb=1024`` refuses to add
    (its rule: the size in KiB, rounded up, above ``max_kb``)."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return [
        f"{f.name}: {math.ceil(f.stat().st_size / 1024)} KB"
        for f in files
        if math.ceil(f.stat().st_size / 1024) > max_kb
    ]


def test_best_model_is_stored_in_float16_below_the_zoo_size_limit(trained):
    """``models/model.pt`` keeps float16 weights (``key_metric_dtype``), under the zoo's 1 MB check; loaded into the
    float32 network they give what the float32 weights of the same epoch give, to float16 rounding."""
    root, _ = trained
    model = root / "models" / "model.pt"
    state = torch.load(model, map_location="cpu", weights_only=True)
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float16}
    bundle_files = [BUNDLE / "configs", BUNDLE / "docs", BUNDLE / "LICENSE", model, Path(f"{model}.json")]
    assert _zoo_refuses(bundle_files) == []
    # one epoch: the resumable checkpoint of epoch 1 holds the same model in float32
    full = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)["model"]
    assert full["lift.weight"].dtype == torch.float32 and set(full) == set(state)
    for name, weight in full.items():
        assert torch.equal(state[name], weight.to(state[name].dtype)), name
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.parse()
    net16, net32 = (parser.get_parsed_content("network_def", lazy=False) for _ in range(2))  # two instances
    load_model_weights(net16, model)
    net32.load_state_dict(full)
    assert next(net16.parameters()).dtype == torch.float32
    x = torch.rand(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y16, y32 = net16.eval()(x), net32.eval()(x)
    assert not torch.equal(y16, y32)
    torch.testing.assert_close(y16, y32, atol=2e-3, rtol=0)


def test_inference_writes_nifti_on_the_input_grid(trained):
    root, _ = trained
    out = root / "predictions"
    common = ["--bundle_root", str(root), "--dataset_dir", str(root / "data"), "--num_workers", "0"]
    _run_bundle(["configs/inference.json"], "--output_dir", str(out), *common)
    (pred_file,) = out.glob("*.nii.gz")
    assert pred_file.name == "foam_003_restored.nii.gz"
    pred, fbp = nib.load(pred_file), nib.load(root / "data" / "fbp" / "foam_003.nii.gz")
    assert pred.shape == fbp.shape and np.allclose(pred.affine, fbp.affine)
    assert np.isfinite(pred.get_fdata()).all()


def test_metadata_follows_the_schema():
    import jsonschema

    schemas = sorted(REPO.glob("bundles/*/docs/meta_schema_*.json")) + sorted(REPO.glob("monai/meta_schema_*.json"))
    assert schemas, "no offline copy of the MONAI bundle metadata schema in the repository"
    metadata = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    jsonschema.validate(metadata, json.loads(schemas[0].read_text()))
    for name in ("train.json", "evaluate.json", "inference.json"):
        json.loads((BUNDLE / "configs" / name).read_text())
    assert os.path.isfile(BUNDLE / "LICENSE") and os.path.isfile(BUNDLE / "docs" / "README.md")
