"""The BraTS bundle through the clients its users have: MONAI Deploy, MONAI Label, the model zoo's CI steps.

One tiny bundle (a copy of bundles/brats_iunet with a small network written into its configs, as a user would edit
them) is trained for one epoch and shared by every test here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_iunet import IUNet
from monai_iunet.data import generate_synthetic_brats

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "bundles" / "brats_iunet"
SHAPE = (27, 31, 23)
CHANNELS = [8, 16]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _edit(path: Path, **values) -> None:
    config = json.loads(path.read_text())
    for key, value in values.items():
        node = config
        *parents, last = key.split("#")
        for parent in parents:
            node = node[parent]
        node[last] = value
    path.write_text(json.dumps(config, indent=4) + "\n")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A copy of the BraTS bundle with a tiny network, trained one epoch on 6 synthetic cases (2 unlabelled)."""
    root = tmp_path_factory.mktemp("clients") / "brats_iunet"
    shutil.copytree(SOURCE, root, ignore=shutil.ignore_patterns("models", "eval", "data", "predictions"))
    configs = root / "configs"
    for name in ("train.json", "inference.json"):
        _edit(configs / name, **{"network_def#channels": CHANNELS, "num_workers": 0})
    _edit(configs / "train.json", patch_size=[24, 24, 24], epochs=1, batch_size=2)
    _edit(configs / "inference.json", patch_size=[16, 16, 16])
    data = root.parent / "data"
    generate_synthetic_brats(data, num_cases=6, spatial_size=SHAPE, num_unlabeled=2)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs / "train.json")]
    cmd += ["--meta_file", str(configs / "metadata.json"), "--bundle_root", str(root), "--dataset_dir", str(data)]
    _run(cmd)
    assert (root / "models" / "model.pt").is_file()
    return root


def _parser(bundle: Path, *configs: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / c) for c in configs])
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    return parser


def test_inference_parses_with_no_dataset(tmp_path):
    """Deploy and Label read these ids with no dataset on disk: nothing may touch dataset_dir."""
    parser = _parser(SOURCE, "inference.json")
    parser["bundle_root"] = str(tmp_path)
    for key in ("network_def", "preprocessing", "inferer", "postprocessing", "device"):
        assert parser.get_parsed_content(key) is not None
    assert parser.get_parsed_content("network_def").in_channels == parser.get_parsed_content("in_channels") == 4
    assert list(tmp_path.iterdir()) == []  # no dataset generated or read


def test_monai_deploy_operator_runs_one_case(bundle):
    """MonaiBundleInferenceOperator strips LoadImaged/SaveImaged and hands a channel-last array."""
    from monai.deploy.core import Application, Image, IOType
    from monai.deploy.core.app_context import AppContext
    from monai.deploy.operators.monai_bundle_inference_operator import IOMapping, MonaiBundleInferenceOperator

    class Input:
        def receive(self, name):
            return np.random.default_rng(0).random((23, 21, 19, 4), dtype=np.float32)

    class Output:
        def __init__(self) -> None:
            self.values = {}

        def emit(self, value, name):
            self.values[name] = value

    operator = MonaiBundleInferenceOperator(
        Application(),
        app_context=AppContext({}),
        input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
        output_mapping=[IOMapping("pred", Image, IOType.IN_MEMORY)],
        bundle_path=bundle,
    )
    output = Output()
    operator.compute(Input(), output, None)
    labels = output.values["pred"].asnumpy()
    assert labels.shape == (19, 21, 23)  # Deploy's DICOM order (D, H, W) of the input's grid
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    described = {int(k) for k in meta["network_data_format"]["post_processed_outputs"]["pred"]["channel_def"]}
    assert set(np.unique(labels)) <= described and described == {0, 1, 2, 3}  # msd: consecutive, for DICOM-SEG
    assert not (bundle / "data").exists()


def test_consecutive_labels_for_dicom_seg(bundle):
    """label_convention brats2023 gives labels 1, 2, 3: one DICOM-SEG segment description per label value."""
    parser = _parser(bundle, "inference.json")
    parser["label_convention"] = "brats2023"
    post = parser.get_parsed_content("postprocessing")
    convert = next(t for t in post.transforms if type(t).__name__ == "ConvertBratsChannelsToLabelsd")
    channels = torch.zeros(3, 4, 4, 4)
    channels[1, :2] = 1  # whole tumour
    channels[0, :1] = 1  # tumour core
    channels[2, 0, 0] = 1  # enhancing
    labels = convert({"pred": channels})["pred"]
    assert set(torch.unique(labels).tolist()) == {0, 1, 2, 3}


def test_monai_label_style_training_override(bundle, tmp_path):
    """MONAI Label runs train.json with train#dataset#data / validate#dataset#data of MSD-convention cases."""
    msd = tmp_path / "Task01"
    generate_synthetic_brats(msd, num_cases=3, spatial_size=(21, 19, 17), layout="msd")
    pairs = [{"image": str(p), "label": str(msd / "labelsTr" / p.name)} for p in sorted((msd / "imagesTr").iterdir())]
    assert set(np.unique(np.asarray(nib.load(pairs[0]["label"]).dataobj))) <= {0, 1, 2, 3}
    work = tmp_path / "label_bundle"
    shutil.copytree(bundle, work)
    model = work / "models" / "model.pt"
    before = torch.load(model, weights_only=True)
    overrides = {
        "bundle_root": str(work),
        "train#trainer#max_epochs": 1,
        "train#dataset#data": pairs[:2],
        "validate#dataset#data": pairs[2:],
        "device": "cpu",
        "train#handlers": [
            {"_target_": "CheckpointLoader", "load_path": str(model), "load_dict": {"model": "$@network"}},
            *_parser(work, "train.json").get("train#handlers"),
        ],
    }
    script = (
        "import json, sys, monai.bundle\n"
        "monai.bundle.run(run_id='run', init_id=None, final_id=None, meta_file=sys.argv[1], config_file=sys.argv[2],"
        " **json.loads(sys.argv[3]))\n"
    )
    configs = work / "configs"
    _run(
        [
            sys.executable,
            "-c",
            script,
            str(configs / "metadata.json"),
            str(configs / "train.json"),
            json.dumps(overrides),
        ]
    )
    assert not (work / "data").exists()  # nothing generated into the bundle
    after = torch.load(model, weights_only=True)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained on the MSD cases and saved


def test_zoo_workflows_properties_and_one_epoch_train_then_infer(bundle, tmp_path):
    """The model zoo's unit tests: ConfigWorkflow train / infer, check_properties(), then the inference runs."""
    configs = bundle / "configs"
    common = {
        "meta_file": str(configs / "metadata.json"),
        "logging_file": str(configs / "logging.conf"),
        "bundle_root": str(bundle),
        "dataset_dir": str(bundle.parent / "data"),
    }
    trainer = ConfigWorkflow(  # overwrite: a training run refuses to replace the fixture's trained model.pt otherwise
        workflow_type="train", config_file=str(configs / "train.json"), epochs=1, overwrite=True, **common
    )
    trainer.initialize()
    assert not trainer.check_properties()  # training itself ran in the fixture (one epoch: model.pt exists)
    output = tmp_path / "predictions"
    inferrer = ConfigWorkflow(
        workflow_type="infer", config_file=str(configs / "inference.json"), output_dir=str(output), **common
    )
    inferrer.initialize()
    assert not inferrer.check_properties()
    inferrer.run()
    inferrer.finalize()
    assert sorted(p.name for p in output.iterdir()) == ["SynthBraTS_00004_seg.nii.gz", "SynthBraTS_00005_seg.nii.gz"]


@pytest.mark.parametrize("use_trace", [False, True])
def test_zoo_export_then_model_ts_inference(bundle, tmp_path, use_trace):
    """ckpt_export (scripted, the zoo's default, and traced), then inference from model.ts per CONTRIBUTING.md."""
    configs = bundle / "configs"
    exported = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported)]
    cmd += ["--ckpt_file", str(bundle / "models" / "model.pt"), "--meta_file", str(configs / "metadata.json")]
    cmd += ["--config_file", str(configs / "inference.json"), "--bundle_root", str(bundle)]
    if use_trace:
        cmd += ["--use_trace", "True", "--input_shape", "[1, 4, 16, 16, 16]"]
    _run(cmd)
    ts = torch.jit.load(str(exported))
    net = IUNet(3, 4, 3, channels=CHANNELS, blocks=1).eval()
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    x = torch.randn(1, 4, 19, 21, 23)  # not the traced size, not divisible by the network's stride
    with torch.no_grad():
        torch.testing.assert_close(ts(x), net(x), rtol=1e-4, atol=1e-4)

    output = tmp_path / "predictions"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs / "inference.json")]
    cmd += ["--meta_file", str(configs / "metadata.json"), "--bundle_root", str(bundle), "--output_dir", str(output)]
    cmd += ["--dataset_dir", str(bundle.parent / "data"), "--handlers#0#_disabled_", "True"]
    cmd += ["--network_def", f"$torch.jit.load('{exported}')"]
    _run(cmd)
    assert sorted(p.name for p in output.iterdir()) == ["SynthBraTS_00004_seg.nii.gz", "SynthBraTS_00005_seg.nii.gz"]
