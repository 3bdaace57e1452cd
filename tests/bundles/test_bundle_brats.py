"""The BraTS bundle through ``python -m monai.bundle``: train, evaluate, infer, resume, distributed, verify
(export: test_bundle_clients.py).

Every run is a subprocess on tiny synthetic volumes of odd sizes, with a tiny network and one epoch.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_iunet.brats.scoring import CSV_COLUMNS
from monai_iunet.bundle import latest_checkpoint
from monai_iunet.cli import main as cli_main
from monai_iunet.data import generate_synthetic_brats

from conftest import PROGRESS_DRAWN_ENV

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brats_iunet"
CONFIGS = BUNDLE / "configs"
TRAIN, EVALUATE, INFERENCE = (str(CONFIGS / f) for f in ("train.json", "evaluate.json", "inference.json"))
MULTI_GPU = str(CONFIGS / "multi_gpu_train.json")
SHAPE = (27, 31, 23)  # odd, different per axis, not divisible by the network's stride
NETWORK = ["--network_def#channels", "[8, 16]", "--patch_size", "[24, 24, 24]", "--num_workers", "0"]
TINY = [*NETWORK, "--epochs", "1", "--val_interval", "1", "--batch_size", "2"]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _config_arg(*configs: str) -> str:
    return configs[0] if len(configs) == 1 else str(list(configs))


def _bundle(
    command: str, configs: tuple[str, ...], *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", command, "--config_file", _config_arg(*configs)]
    cmd += ["--meta_file", str(CONFIGS / "metadata.json"), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**_env(), **(env or {})})
    if check:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def _losses(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"mean train_loss ([0-9.]+)", output)]


def _best_in_log_and_record(output: str, models: Path) -> tuple[tuple[float, int], tuple[float, int]]:
    """The best model's (score to 4 decimals, epoch) as the last validation line names it, and as model.pt.json does."""
    value, epoch = re.findall(r"best val_mean_dice ([0-9.]+) after epoch (\d+)", output)[-1]
    record = json.loads((models / "model.pt.json").read_text())
    return (float(value), int(epoch)), (round(record["value"], 4), record["epoch"])


@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> dict:
    """Train (1 epoch), evaluate and infer on a BraTS 2018-2021 dataset; 2 of its 6 cases are unlabelled."""
    root = tmp_path_factory.mktemp("brats_bundle")
    data = root / "data"
    generate_synthetic_brats(data, num_cases=6, spatial_size=SHAPE, num_unlabeled=2, spacing=(1.0, 1.0, 1.2))
    common = ["--bundle_root", str(root), "--dataset_dir", str(data)]
    train = _bundle("run", (TRAIN,), *common, *TINY, env=PROGRESS_DRAWN_ENV)  # progress bars drawn into the pipe
    evaluate = _bundle("run", (TRAIN, EVALUATE), *common, *NETWORK)
    infer = _bundle("run", (INFERENCE,), *common, *NETWORK)
    return {
        "root": root,
        "data": data,
        "common": common,
        "train": _output(train),
        "train_stderr": train.stderr,
        "evaluate": evaluate.stdout,
        "quiet_stderr": evaluate.stderr + infer.stderr,
    }


def test_train_writes_best_model_and_latest_checkpoint(brats):
    models = brats["root"] / "models"
    assert sorted(os.listdir(models)) == ["checkpoint_epoch=1.pt", "model.pt", "model.pt.json"]
    latest = torch.load(models / "checkpoint_epoch=1.pt", weights_only=True)
    assert set(latest) == {"model", "optimizer", "lr_scheduler", "trainer", "best_model_saver"}
    best_dice = latest["best_model_saver"]["_saved"][0][0]  # the best score so far, kept for resuming
    assert f"best val_mean_dice {best_dice:.4f} after epoch 1" in brats["train"]
    assert latest["best_model_saver"]["best_epoch"] == 1
    in_log, in_record = _best_in_log_and_record(brats["train"], models)
    assert in_log == in_record
    assert latest["trainer"]["max_epochs"] == 1
    assert re.search(r"validation after epoch 1: .*val_dice_et", brats["train"])  # per-region metrics ran
    assert "Engine run resuming" not in brats["train"]  # a fresh run says nothing about resuming


def test_progress_bars_with_time_left_only_where_drawn(brats):
    """Training and its validation draw bars with the time left when told to; evaluation and inference, run with
    stderr a pipe (no terminal), draw nothing."""
    eta = r"\[\d\d:\d\d<\d\d:\d\d"
    assert re.search(rf"train: .*(\d+)/\1 {eta}.*(batch/s|s/batch), epoch 1/1, loss \d", brats["train_stderr"])
    assert re.search(rf"validate: .*(\d+)/\1 {eta}.*(case/s|s/case)", brats["train_stderr"])
    assert "\r" not in brats["quiet_stderr"] and not re.search(
        r"(case|batch|it)/s|s/(case|batch|it)\b", brats["quiet_stderr"]
    )


def test_evaluate_writes_metrics_per_region_and_case(brats):
    eval_dir = brats["root"] / "eval"
    with open(eval_dir / "metrics.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS  # the columns of monai-iunet evaluate
    assert [r["region"] for r in rows] == ["et", "tc", "wt"] and rows[0]["case"].startswith("SynthBraTS_")
    for row in rows:
        assert 0.0 <= float(row["dice"]) <= 1.0 and 0.0 <= float(row["sensitivity"]) <= 1.0
        assert float(row["hd95"]) >= 0.0
    with open(eval_dir / "metrics_summary.csv") as f:
        summary = {(r["region"], r["metric"]): r for r in csv.DictReader(f)}
    table = brats["evaluate"]
    assert re.search(r"region\s+Dice\s+sensitivity\n(TC|WT|ET)", table)
    assert f"{float(summary[('wt', 'dice')]['mean']):.4f}" in table


def test_evaluation_equals_monai_iunet_evaluate_on_what_inference_writes(brats, tmp_path):
    """The bundle scores the label map inference writes, on the case's own (1 x 1 x 1.2 mm) grid, with inference's
    inferer: scoring inference's files with ``monai-iunet evaluate`` gives the same CSV."""
    predictions, references = tmp_path / "predictions", tmp_path / "references"
    infer = ["--network_def#channels", "[8, 16]", "--num_workers", "0", "--inference_subset", "validation"]
    _bundle("run", (INFERENCE,), *brats["common"], *infer, "--output_dir", str(predictions))
    references.mkdir()
    for prediction in predictions.iterdir():
        case = prediction.name[: -len("_seg.nii.gz")]
        shutil.copy(brats["data"] / case / f"{case}_seg.nii.gz", references)
    args = ["--pred", str(predictions), "--ref", str(references), "--convention", "brats2021"]
    assert cli_main(["evaluate", *args, "--output", str(tmp_path / "metrics.csv")]) == 0
    expected = (brats["root"] / "eval" / "metrics.csv").read_text()
    assert (tmp_path / "metrics.csv").read_text() == expected


def test_inference_keeps_input_geometry_and_label_convention(brats):
    predictions = sorted((brats["root"] / "predictions").iterdir())
    assert [p.name for p in predictions] == ["SynthBraTS_00004_seg.nii.gz", "SynthBraTS_00005_seg.nii.gz"]
    for prediction in predictions:
        case = prediction.name[: -len("_seg.nii.gz")]
        source = nib.load(brats["data"] / case / f"{case}_flair.nii.gz")
        saved = nib.load(prediction)
        assert saved.shape == source.shape == SHAPE
        np.testing.assert_allclose(saved.affine, source.affine, atol=1e-5)
        assert set(np.unique(np.asarray(saved.dataobj))) <= {0, 1, 2, 4}


def test_inference_refuses_to_overwrite(brats):
    result = _bundle("run", (INFERENCE,), *brats["common"], *NETWORK, check=False)
    assert result.returncode != 0
    assert "2 prediction(s) already exist" in _output(result) and "--overwrite True" in _output(result)
    _bundle("run", (INFERENCE,), *brats["common"], *NETWORK, "--overwrite", "true")


def test_resume_continues_from_the_saved_epoch(brats, tmp_path):
    """Resumed to 2 epochs from a run whose best model (epoch 1) scored 0.99: epoch 2 cannot beat it, and the log
    names epoch 1 as the best, as model.pt.json does (a resumed evaluator used to start again from no best)."""
    models = tmp_path / "models"
    shutil.copytree(brats["root"] / "models", models)
    checkpoint = torch.load(models / "checkpoint_epoch=1.pt", weights_only=True)
    checkpoint["best_model_saver"]["_saved"] = [(0.99, "model.pt")]
    torch.save(checkpoint, models / "checkpoint_epoch=1.pt")
    (models / "model.pt.json").write_text(json.dumps({"epoch": 1, "metric": "val_mean_dice", "value": 0.99}))
    model_before = (models / "model.pt").read_bytes()
    common = ["--bundle_root", str(tmp_path), "--dataset_dir", str(brats["data"])]
    result = _output(_bundle("run", (TRAIN,), *common, *TINY, "--epochs", "2", "--resume", "true"))
    assert "resume: continuing from" in result and "checkpoint_epoch=1.pt" in result
    assert "epoch 2/2:" in result and "epoch 1/2:" not in result
    assert "(epoch 1 of 2 done)" in result
    assert latest_checkpoint(models).endswith("checkpoint_epoch=2.pt")
    assert re.search(r"validation after epoch 2: .*; best val_mean_dice 0.9900 after epoch 1\n", result)
    assert _best_in_log_and_record(result, models) == ((0.99, 1), (0.99, 1))
    assert (models / "model.pt").read_bytes() == model_before


def test_killed_training_resumes(brats, tmp_path):
    common = ["--bundle_root", str(tmp_path), "--dataset_dir", str(brats["data"])]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, *common, *TINY, "--epochs", "50"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.time() + 600
        while latest_checkpoint(tmp_path / "models") is None and time.time() < deadline:
            assert process.poll() is None, "training ended before it could be killed"
            time.sleep(0.2)
        assert process.poll() is None
        process.send_signal(signal.SIGKILL)  # no chance to clean up
    finally:
        process.kill()
        process.wait()
    for name in os.listdir(tmp_path / "models"):  # whatever was written is complete
        if name.endswith(".pt"):
            torch.load(tmp_path / "models" / name, weights_only=True)
    saved_epoch = int(re.search(r"epoch=(\d+)", latest_checkpoint(tmp_path / "models")).group(1))
    epochs = str(saved_epoch + 1)
    result = _output(_bundle("run", (TRAIN,), *common, *TINY, "--epochs", epochs, "--resume", "true"))
    assert f"epoch {epochs}/{epochs}:" in result and f"epoch {saved_epoch}/{epochs}:" not in result
    assert latest_checkpoint(tmp_path / "models").endswith(f"checkpoint_epoch={epochs}.pt")


def _weights(root: Path) -> dict:
    return torch.load(root / "models" / "checkpoint_epoch=1.pt", weights_only=True)["model"]


def test_same_seed_same_weights_on_cpu(brats, tmp_path):
    """On a CPU with the same seed, thread count (1) and ``num_workers`` the weights are bit-identical, also with
    ``DataLoader`` workers drawing the augmentations (the main job's ``num_workers`` 2); another seed differs."""
    runs = {}
    for name in ("a", "b"):
        common = ["--bundle_root", str(tmp_path / name), "--dataset_dir", str(brats["data"])]
        runs[name] = _output(_bundle("run", (TRAIN,), *common, *TINY, "--num_workers", "2"))
    assert _losses(runs["a"]) == _losses(runs["b"]) and len(_losses(runs["a"])) == 1
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    common = ["--bundle_root", str(tmp_path / "a"), "--dataset_dir", str(brats["data"])]
    other = _losses(_output(_bundle("run", (TRAIN,), *common, *TINY, "--seed", "1", "--overwrite", "true")))
    assert other != _losses(brats["train"])


def test_msd_layout_train_and_infer(tmp_path):
    data = tmp_path / "Task01_BrainTumour"
    generate_synthetic_brats(data, num_cases=5, spatial_size=(25, 21, 19), num_unlabeled=1, layout="msd")
    common = ["--bundle_root", str(tmp_path), "--dataset_dir", str(data)]
    _bundle("run", (TRAIN,), *common, *TINY)
    _bundle("run", (INFERENCE,), *common, *NETWORK, "--label_convention", "msd")
    prediction = nib.load(tmp_path / "predictions" / "SynthBraTS_00004_seg.nii.gz")
    source = nib.load(data / "imagesTs" / "SynthBraTS_00004.nii.gz")
    assert prediction.shape == source.shape[:3]
    np.testing.assert_allclose(prediction.affine, source.affine, atol=1e-5)
    assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2, 3}


def _corrupt(path: Path) -> None:
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[data > 0] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), path)


def test_broken_cases_are_named_skipped_and_reported(brats, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(brats["data"], data)
    common = ["--bundle_root", str(tmp_path), "--dataset_dir", str(data)]
    nan_file = data / "SynthBraTS_00000" / "SynthBraTS_00000_t1ce.nii.gz"
    _corrupt(nan_file)
    failed = _bundle("run", (TRAIN,), *common, *TINY, "--skip_broken_cases", "false", check=False)
    assert failed.returncode != 0
    assert f"case SynthBraTS_00000: {nan_file}" in _output(failed) and "--skip_broken_cases True" in _output(failed)
    skipped = _output(_bundle("run", (TRAIN,), *common, *TINY))
    assert "SynthBraTS_00000" in skipped and "NaN/Inf" in skipped

    broken_input = data / "SynthBraTS_00005" / "SynthBraTS_00005_flair.nii.gz"
    broken_input.write_bytes(broken_input.read_bytes()[:200])  # truncated
    infer = _bundle("run", (INFERENCE,), *common, *NETWORK, check=False)
    assert infer.returncode != 0
    assert "skipped 1 broken case(s)" in _output(infer) and f"case SynthBraTS_00005: {broken_input}" in _output(infer)
    assert [p.name for p in (tmp_path / "predictions").iterdir()] == ["SynthBraTS_00004_seg.nii.gz"]


def test_two_process_gloo_training(tmp_path):
    data = tmp_path / "data"
    generate_synthetic_brats(data, num_cases=6, spatial_size=SHAPE)  # 4 training, 2 validation cases: 1 per rank
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", _config_arg(TRAIN, MULTI_GPU)]
    cmd += ["--meta_file", str(CONFIGS / "metadata.json"), "--bundle_root", str(tmp_path), "--dataset_dir", str(data)]
    cmd += [*TINY, "--val_fraction", "0.34"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert sorted(os.listdir(tmp_path / "models")) == ["checkpoint_epoch=1.pt", "model.pt", "model.pt.json"]
    assert re.search(r"validation after epoch 1: .*val_dice_et", _output(result))
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in model)  # saved unwrapped, loadable by inference
    assert torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", weights_only=True)["trainer"]["world_size"] == 2

    # resumed in one process: epoch 2 has this run's 2 iterations (4 cases, batch 2), not the 1 per process saved
    common = ["--bundle_root", str(tmp_path), "--dataset_dir", str(data), "--val_fraction", "0.34"]
    resumed = _output(_bundle("run", (TRAIN,), *common, *TINY, "--epochs", "2", "--resume", "true"))
    assert "trained by 2 process(es) with 1 iteration(s) per epoch, this run has 1 process(es) with 2" in resumed
    assert re.search(r"epoch 2/2: mean train_loss [0-9.]+ over 2 iterations", resumed)
    assert "epoch 1/2:" not in resumed and latest_checkpoint(tmp_path / "models").endswith("checkpoint_epoch=2.pt")
    in_log, in_record = _best_in_log_and_record(resumed, tmp_path / "models")
    assert in_log == in_record


def test_verify_metadata_offline():
    schema = BUNDLE / "docs" / "meta_schema_20240725.json"
    cmd = [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", str(CONFIGS / "metadata.json")]
    result = subprocess.run([*cmd, "--filepath", str(schema)], capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "metadata is verified with no error" in _output(result)


def test_verify_net_in_out():
    cmd = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def"]
    cmd += ["--meta_file", str(CONFIGS / "metadata.json"), "--config_file", INFERENCE]
    cmd += ["--network_def#channels", "[8, 16]", "--any", "19"]  # an odd size the network pads and crops back
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data shape of network is verified with no error" in _output(result)
