"""The BraTS bundle on awkward but ordinary scans and runs: any axis order, colliding names, a case that does not
fit in memory, an output folder that cannot be written, a mistyped dataset folder, every case broken."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_iunet import IUNet
from monai_iunet.brats.cases import select_cases
from monai_iunet.bundle import check_writable
from monai_iunet.data import BrokenCaseError, drop_broken_cases, generate_synthetic_brats
from monai_iunet.data.embedded_dataset import ensure_dataset
from monai_iunet.errors import InputNotFoundError, UserInputError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "brats_iunet" / "configs"
CHANNELS = [8, 16]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    paths = [str(REPO), str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _orientations():
    """All 48 axis orders and directions, as nibabel orientation arrays ``[[axis, flip], ...]``."""
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            yield np.array([[p, f] for p, f in zip(perm, flips)])


def test_every_orientation_is_predicted_on_its_own_grid_and_agrees_with_axial(tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update({"network_def#channels": CHANNELS, "patch_size": [16, 16, 16], "output_dir": str(tmp_path / "out")})
    preprocessing, postprocessing = (
        parser.get_parsed_content("preprocessing"),
        parser.get_parsed_content("postprocessing"),
    )
    inferer = parser.get_parsed_content("inferer")
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    with torch.no_grad():
        network.project.bias.fill_(0.3)  # an untrained network that still predicts every region somewhere

    rng = np.random.default_rng(0)
    axial = nib.Nifti1Image(rng.random((12, 14, 10, 4), dtype=np.float32) + 0.1, np.diag([1.0, 1.0, 1.0, 1.0]))
    predictions = {}
    for index, ornt in enumerate(_orientations()):
        data = nib.orientations.apply_orientation(np.asanyarray(axial.dataobj), ornt)
        affine = axial.affine @ nib.orientations.inv_ornt_aff(ornt, axial.shape[:3])
        path = tmp_path / f"case{index:02d}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), path)
        item = preprocessing({"image": str(path), "case": path.name[:-7]})
        with torch.no_grad():
            item["pred"] = inferer(item["image"][None], network)[0]
        postprocessing(item)  # SaveImaged: crashed for 32 of the 48 orders ("Affine ... is not invertible")
        saved = nib.load(tmp_path / "out" / f"case{index:02d}_seg.nii.gz")
        assert saved.shape == data.shape[:3]  # on the scan's own grid
        np.testing.assert_allclose(saved.affine, affine, atol=1e-5)
        predictions[index] = np.asanyarray(nib.as_closest_canonical(saved).dataobj)
    reference = predictions[0]  # (0, 1, 2) without flips: the axial scan
    assert len(np.unique(reference)) >= 2  # not a constant prediction
    for index, prediction in predictions.items():
        np.testing.assert_array_equal(prediction, reference, err_msg=f"orientation {index}")


def test_colliding_prediction_names_are_refused_before_running():
    datalist = {
        "layout": "msd",
        "training": [{"image": "Task01/imagesTr/BRATS_001.nii.gz", "label": "l.nii.gz", "case": "BRATS_001"}],
        "validation": [],
        "testing": [{"image": "Task01/imagesTs/BRATS_001.nii.gz", "case": "BRATS_001"}],
    }
    with pytest.raises(UserInputError, match="BRATS_001: Task01/imagesTr/BRATS_001.nii.gz, Task01/imagesTs"):
        select_cases(datalist, "all")
    assert [c["case"] for c in select_cases(datalist, "testing")] == ["BRATS_001"]


def test_unwritable_output_dir_is_reported_before_inference(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserInputError, match="cannot write predictions to output_dir .*file/predictions"):
        check_writable(blocker / "predictions")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserInputError, match="choose a folder you can write to"):
            check_writable(locked)
    check_writable(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir()


def test_mistyped_dataset_dir_is_an_error_not_a_synthetic_dataset(tmp_path):
    default = tmp_path / "data"
    typo = tmp_path / "BraTS2O21"
    with pytest.raises(InputNotFoundError, match="BraTS2O21' does not exist.*synthetic demo data"):
        ensure_dataset(typo, generate="auto", default_dir=default, num_cases=2, spatial_size=12)
    assert not typo.exists()
    assert ensure_dataset(default, generate="auto", default_dir=default, num_cases=2, spatial_size=12) == str(default)
    assert len(list(default.iterdir())) == 2
    ensure_dataset(typo, generate=True, num_cases=1, spatial_size=12)  # --synthetic#generate True
    assert len(list(typo.iterdir())) == 1

    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json")]
    cmd += ["--bundle_root", str(tmp_path), "--dataset_dir", str(tmp_path / "missing")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode != 0 and "missing' does not exist or is empty" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_every_case_broken_gives_advice_that_helps(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=2, spatial_size=10)
    items = []
    for case in sorted(p for p in tmp_path.iterdir()):
        flair = case / f"{case.name}_flair.nii.gz"
        flair.write_bytes(flair.read_bytes()[:100])
        items.append({"image": [str(flair)], "case": case.name})
    with pytest.raises(BrokenCaseError) as error:
        drop_broken_cases(items, skip_broken=True, num_channels=1)
    assert "Every case is broken" in str(error.value) and "skip_broken" not in str(error.value)


def test_out_of_memory_case_is_reported_and_the_others_predicted(tmp_path):
    data = tmp_path / "data"
    generate_synthetic_brats(data, num_cases=2, spatial_size=(14, 12, 10), num_unlabeled=2, seed=1)
    generate_synthetic_brats(data, num_cases=1, spatial_size=(30, 28, 26), num_unlabeled=1, prefix="Large")
    (tmp_path / "models").mkdir()
    torch.save(IUNet(3, 4, 3, channels=CHANNELS, blocks=1).state_dict(), tmp_path / "models" / "model.pt")
    inferer = (
        "$__import__('bundle_oom_inferer').OutOfMemoryAbove(monai.inferers.SlidingWindowInferer([16, 16, 16]), 5000)"
    )
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json")]
    cmd += ["--bundle_root", str(tmp_path), "--network_def#channels", str(CHANNELS), "--num_workers", "0"]
    cmd += ["--inferer", inferer]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "case Large_00000: out of memory (4 x 30x28x26 voxels" in output
    written = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert written == ["SynthBraTS_00000_seg.nii.gz", "SynthBraTS_00001_seg.nii.gz"]
