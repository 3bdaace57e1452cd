"""The bundles for users of the wheel: shipped as data files, found, and copied out by ``monai-iunet bundle``."""

from __future__ import annotations

import configparser
import glob
from pathlib import Path

import pytest

from monai_iunet.bundle.shipped import copy_bundle, shipped_bundles
from monai_iunet.cli import main
from monai_iunet.errors import InputNotFoundError, OutputExistsError

REPO = Path(__file__).resolve().parents[2]


def test_every_bundle_file_is_listed_as_wheel_data():
    """setup.cfg's data_files cover each file of each bundle (what `pip wheel .` puts under share/monai-iunet)."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    shipped = set()
    for target, sources in setup["options.data_files"].items():
        assert target.startswith("share/monai-iunet/bundles/")
        for pattern in sources.split():
            shipped.update(Path(f).relative_to(REPO) for f in glob.glob(str(REPO / pattern)))
    for bundle in ("brats_iunet", "ct_postprocessing_iunet"):
        root = REPO / "bundles" / bundle
        files = {p.relative_to(REPO) for sub in ("configs", "docs") for p in (root / sub).iterdir() if p.is_file()}
        files |= {p.relative_to(REPO) for p in root.glob("scripts/*.py")} | {(root / "LICENSE").relative_to(REPO)}
        assert files <= shipped, sorted(map(str, files - shipped))


def test_bundle_copy_gives_a_runnable_bundle_folder(tmp_path, capsys):
    assert {"brats_iunet", "ct_postprocessing_iunet"} <= set(shipped_bundles())
    assert main(["bundle", "copy", "brats_iunet", str(tmp_path / "brats")]) == 0
    assert "copied brats_iunet" in capsys.readouterr().out
    for name in ("LICENSE", "configs/train.json", "configs/inference.json", "configs/metadata.json"):
        assert (tmp_path / "brats" / name).is_file()
    assert not (tmp_path / "brats" / "models").exists()  # no trained model or data of a run in the repository
    with pytest.raises(OutputExistsError, match="exists"):
        copy_bundle("brats_iunet", tmp_path / "brats")
    with pytest.raises(InputNotFoundError, match="shipped bundles: brats_iunet, ct_postprocessing_iunet"):
        copy_bundle("spleen", tmp_path / "spleen")
