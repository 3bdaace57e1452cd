"""The bundles for users of the wheel: package data, found with importlib.resources, copied out by ``monai-iunet``."""

from __future__ import annotations

import configparser
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_weights import write_random_weights

from monai_iunet.bundle.shipped import copy_bundle, shipped_bundles, shipped_bundles_folder
from monai_iunet.cli import main
from monai_iunet.errors import InputNotFoundError, OutputExistsError

REPO = Path(__file__).resolve().parents[2]


def test_the_package_data_is_the_repository_bundles():
    """``monai_iunet/bundles`` is the repository's ``bundles/`` (one copy in git), and setup.cfg's package data
    patterns cover each file of each bundle (what ``pip wheel .`` puts into the wheel)."""
    assert (REPO / "monai_iunet" / "bundles").is_symlink()
    assert shipped_bundles_folder().resolve() == (REPO / "bundles").resolve()
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    package = REPO / "monai_iunet"
    shipped = {
        Path(f).relative_to(package)
        for p in setup["options.package_data"]["monai_iunet"].split()
        for f in glob.glob(str(package / p))
    }
    for bundle in ("brats_iunet", "ct_postprocessing_iunet"):
        root = Path("bundles") / bundle
        files = {p.relative_to(package) for p in (package / root).rglob("*") if p.is_file()}
        files = {f for f in files if f.parts[2] not in ("models", "eval", "data", "predictions", "runs")}
        files = {f for f in files if "__pycache__" not in f.parts}
        assert files and files <= shipped, sorted(map(str, files - shipped))


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


def _source_copy(destination: Path) -> Path:
    """The files of the checkout that git tracks (or would), copied to ``destination``: the build writes there."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source, target = REPO / name, destination / name
        if not source.exists() and not source.is_symlink():  # deleted in the work tree
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return destination


@pytest.mark.slow
def test_wheel_finds_its_bundles(tmp_path):
    """Built as a wheel, installed into a fresh venv and run outside the checkout: ``bundle copy``, and ``segment``
    without ``--bundle`` on the bundle inside the installed package."""
    from monai_iunet.data.synthetic_exports import make_scanner_export

    source = _source_copy(tmp_path / "source")
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", str(wheels)]
    subprocess.run(build, cwd=source, check=True, capture_output=True, timeout=300)
    # no pip of its own in the venv: the system's pip and setuptools install into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    # without the caller's PYTHONPATH, which may name a checkout whose egg-info makes pip skip the wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    install = [str(python), "-m", "pip", "install", "--no-deps", "-q", str(next(wheels.glob("*.whl")))]
    subprocess.run(install, check=True, capture_output=True, timeout=300, env=env)
    work.mkdir()

    def monai_iunet(*argv: str) -> subprocess.CompletedProcess:
        command = [str(venv / "bin" / "monai-iunet"), *argv]
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    copied = monai_iunet("bundle", "copy", "brats_iunet", "brats")
    assert copied.returncode == 0, copied.stderr
    assert (work / "brats" / "configs" / "inference.json").is_file()
    installed = Path(
        subprocess.run(
            [str(python), "-c", "import monai_iunet.bundle.shipped as s; print(s.shipped_bundle('brats_iunet'))"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    assert venv in installed.parents and source not in installed.parents

    export = make_scanner_export(tmp_path / "export", spatial_size=48, seed=5, formats=["nifti"])
    inputs = [f"--{m}={path}" for m, path in export["nifti"].items()]
    untrained = monai_iunet("segment", *inputs, "--output", "out", "--device", "cpu")
    assert untrained.returncode == 2, untrained.stderr
    assert f"no trained weights at {installed / 'models' / 'model.pt'}" in untrained.stderr
    write_random_weights(installed)
    result = monai_iunet("segment", *inputs, "--output", "out", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert (work / "out" / "segmentation.nii.gz").is_file()
    assert str(installed) in (work / "out" / "report.json").read_text()
