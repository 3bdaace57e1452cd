"""The MONAI Deploy App SDK application ``apps/brats_iunet_seg`` on a folder of synthetic DICOM series."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
import SimpleITK as sitk
from clinical_data import make_bundle_with_weights

from monai_iunet.clinical import read_series
from monai_iunet.data.synthetic_exports import make_scanner_export

APP = Path(__file__).resolve().parents[2] / "apps" / "brats_iunet_seg" / "app.py"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """All four series of one synthetic export mixed in one folder tree, plus a series the rules must skip."""
    root = tmp_path_factory.mktemp("deploy")
    export = make_scanner_export(root / "export", spatial_size=40, seed=4, formats=("dicom",))
    study = root / "study"
    renamed = {"t1": "T1 synthetic", "t2": "T2 synthetic"}  # descriptions that do not end after the name
    for name, folder in export["dicom"].items():
        shutil.copytree(folder, study / f"series_{name}")
        for f in (study / f"series_{name}").iterdir():
            if name in renamed:
                ds = pydicom.dcmread(f)
                ds.SeriesDescription = renamed[name]
                ds.save_as(f)
    scout = study / "series_scout"
    scout.mkdir()
    for f in sorted(Path(export["dicom"]["t1"]).iterdir())[:3]:  # a localizer of the same study
        ds = pydicom.dcmread(f)
        ds.SeriesDescription, ds.SeriesInstanceUID = "localizer", "1.2.826.0.1.3680043.8.498.1"
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(scout / f.name)
    return export, study, make_bundle_with_weights(root / "bundle")


def test_app_segments_a_dicom_study(study, tmp_path):
    export, folder, bundle = study
    output = tmp_path / "output"
    env = {**os.environ, "MONAI_IUNET_BUNDLE": str(bundle), "MONAI_IUNET_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(APP), "-i", str(folder), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"segmentation.dcm", "segmentation.nii.gz", "report.json", "overview.png"} <= {
        p.name for p in output.iterdir()
    }
    report = json.loads((output / "report.json").read_text())
    # identify_series picked each modality's series (not the localizer)
    assert {m: report["inputs"][m]["SeriesDescription"] for m in ("t1", "t1ce", "t2", "flair")} == {
        "t1": "T1 synthetic",
        "t1ce": "T1 post-contrast",
        "t2": "T2 synthetic",
        "flair": "FLAIR",
    }
    reference = read_series("t1ce", export["dicom"]["t1ce"])
    label = sitk.ReadImage(str(output / "segmentation.nii.gz"))
    assert label.GetSize() == reference.image.GetSize()
    seg = hd.seg.segread(str(output / "segmentation.dcm"))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == reference.header["SeriesInstanceUID"]
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == len(reference.files)


def test_app_names_the_missing_series(study, tmp_path):
    export, _, bundle = study
    folder = tmp_path / "incomplete"
    for name in ("t1", "t1ce"):
        shutil.copytree(export["dicom"][name], folder / name)
    env = {**os.environ, "MONAI_IUNET_BUNDLE": str(bundle), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(APP), "-i", str(folder), "-o", str(tmp_path / "output")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "no FLAIR, T2 series found" in result.stdout + result.stderr
    assert not (tmp_path / "output" / "segmentation.nii.gz").exists()
