"""The BraTS bundle in MONAI Label, as its users run it: BundleInferTask, BundleTrainTask and the annotate → train loop.

No server: the tasks are called as MONAI Label's app calls them, on a local datastore of 4D (Decathlon-style) images.
MONAI Label is installed by scripts/install_tests.sh (``pip install --no-deps monailabel`` and its requirements less
torchvision); nothing of it is patched here. torchvision's wheels for torch 2.13.0 are CUDA builds that do not import
beside the CPU torch ("operator torchvision::nms does not exist"); MONAI Label imports ``make_grid`` and
``save_image`` from it at module level (``monailabel/transform/post.py``, for 2D overlays no bundle task calls), so
only when torchvision cannot be imported does this test put an empty ``torchvision.utils`` in front of it, for the
duration of the import.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_iunet.brats import BRATS2021, MSD, convert_labels
from monai_iunet.data import generate_synthetic_brats
from monai_iunet.errors import LabelConventionError, exception_chain

pytest.importorskip("monailabel", reason="MONAI Label is installed by scripts/install_tests.sh")


def _import_monailabel_tasks() -> tuple[type, type, type]:
    """MONAI Label's LocalDatastore, BundleInferTask and BundleTrainTask (see the module docstring on torchvision)."""
    try:
        importlib.import_module("torchvision.utils")
        stubbed = []
    except (ImportError, RuntimeError):
        stubbed = [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
        for name in stubbed:
            del sys.modules[name]
        utils = types.ModuleType("torchvision.utils")
        utils.make_grid = utils.save_image = None  # imported by name, never called by the bundle tasks
        package = types.ModuleType("torchvision")
        package.utils = utils
        sys.modules.update({"torchvision": package, "torchvision.utils": utils})
        stubbed = ["torchvision", "torchvision.utils"]
    try:
        datastore = importlib.import_module("monailabel.datastore.local").LocalDatastore
        infer = importlib.import_module("monailabel.tasks.infer.bundle").BundleInferTask
        train = importlib.import_module("monailabel.tasks.train.bundle").BundleTrainTask
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return datastore, infer, train


LocalDatastore, BundleInferTask, BundleTrainTask = _import_monailabel_tasks()

SOURCE = Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet"


def _edit(path: Path, **values) -> None:
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config, indent=4) + "\n")


@pytest.fixture()
def bundle(tmp_path) -> Path:
    """A copy of the BraTS bundle with a tiny network (as a user edits it) and its untrained weights."""
    root = tmp_path / "brats_iunet"
    shutil.copytree(SOURCE, root, ignore=shutil.ignore_patterns("models", "eval", "data", "predictions"))
    network = {**json.loads((root / "configs" / "inference.json").read_text())["network_def"], "channels": [8, 16]}
    _edit(root / "configs" / "inference.json", network_def=network, patch_size=[16, 16, 16], num_workers=0)
    _edit(root / "configs" / "train.json", network_def=network, patch_size=[16, 16, 16], num_workers=0, batch_size=1)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    (root / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture()
def datastore(tmp_path) -> LocalDatastore:
    """A MONAI Label datastore of five 4D images, three of them labelled (MSD labels, as Task01 ships them)."""
    task = tmp_path / "Task01"
    generate_synthetic_brats(task, num_cases=5, spatial_size=(20, 18, 16), layout="msd")
    store = tmp_path / "datastore"
    store.mkdir()
    images = sorted((task / "imagesTr").glob("*.nii.gz"))
    for image in images:
        shutil.copy(image, store / image.name)
    labels = store / "labels" / "final"
    labels.mkdir(parents=True)
    for image in images[:3]:
        shutil.copy(task / "labelsTr" / image.name, labels / image.name)
    return LocalDatastore(str(store), extensions=("*.nii.gz",))


def _unlabelled(datastore: LocalDatastore) -> list[str]:
    return sorted(datastore.get_unlabeled_images())


def _infer(bundle: Path, datastore: LocalDatastore, image_id: str) -> str:
    task = BundleInferTask(str(bundle), conf={})
    assert task.is_valid()
    assert task.labels == {"edema": 1, "necrotic tumour core": 2, "enhancing tumour": 3}  # from channel_def
    result, _ = task({"image": datastore.get_image_uri(image_id), "device": "cpu"})
    return result


def _train(bundle: Path, datastore: LocalDatastore) -> None:
    task = BundleTrainTask(str(bundle), conf={})
    assert task.is_valid()
    # as MONAI Label's app passes a train request from its client
    task({"model": bundle.name, "max_epochs": 1, "device": "cpu", "multi_gpu": False, "val_split": 0.25}, datastore)


def test_infer_task_writes_the_datastore_convention(bundle, datastore):
    image_id = _unlabelled(datastore)[0]
    result = _infer(bundle, datastore, image_id)
    pred = nib.load(result)
    source = nib.load(datastore.get_image_uri(image_id))
    assert pred.shape == source.shape[:3]
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, *MSD.values}


def test_annotate_then_train(bundle, datastore, caplog):
    """A prediction saved as a label trains as it shows: no case is skipped, and the model is replaced."""
    image_id = _unlabelled(datastore)[0]
    datastore.save_label(image_id, _infer(bundle, datastore, image_id), "final", {})
    before = torch.load(bundle / "models" / "model.pt", weights_only=True)
    _train(bundle, datastore)
    assert "skipping broken" not in caplog.text
    after = torch.load(bundle / "models" / "model.pt", weights_only=True)
    after = after.get("model", after)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_label_in_the_other_convention_stops_training(bundle, datastore, tmp_path):
    image_id = _unlabelled(datastore)[0]
    pred = nib.load(_infer(bundle, datastore, image_id))
    values = np.asarray(pred.dataobj).astype(np.uint8)
    values[:2] = MSD.enhancing  # make sure every tumour part is present
    values[2:4] = MSD.edema
    values[4:6] = MSD.necrosis
    brats2021 = tmp_path / "brats2021_label.nii.gz"  # the prediction as the old bundle wrote it: 1/2/4
    nib.save(nib.Nifti1Image(convert_labels(values, MSD, BRATS2021), pred.affine), brats2021)
    datastore.save_label(image_id, str(brats2021), "final", {})
    with pytest.raises(Exception) as raised:  # MONAI's config parser wraps it in "Failed to instantiate component"
        _train(bundle, datastore)
    (error,) = [e for e in exception_chain(raised.value) if isinstance(e, LabelConventionError)]
    assert str(brats2021.name) not in str(error) and image_id in str(error)  # names the datastore's label file
    assert "brats2021 (1 necrosis, 2 edema, 4 enhancing)" in str(error) and "msd (2 necrosis" in str(error)
