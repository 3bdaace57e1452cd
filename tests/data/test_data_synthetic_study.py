"""Synthetic whole-head studies as scanners export them (monai_iunet.data.synthetic_study)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk

from monai_iunet.data.synthetic_study import VENDOR_PROTOCOLS, make_head_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("head_study")
    return make_head_study(root, seed=2, resolution_mm=4.0, voxel_scale=4.0, formats=("dicom", "nifti"))


def _headers(folder) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(Path(folder).rglob("*.dcm"))]


def test_a_study_folder_holds_every_series_with_real_tags(study):
    protocol = VENDOR_PROTOCOLS[study["manufacturer"]]
    assert set(study["dicom"]) == {"localizer", "t1", "t1ce", "t2", "flair", "dwi", "adc"}
    study_uids, frames = set(), set()
    for key, folder in study["dicom"].items():
        headers = _headers(folder)
        assert {h.SeriesInstanceUID for h in headers} == {study["series"][key]}
        assert {h.SeriesDescription for h in headers} == {protocol[key][0]}
        assert {h.Manufacturer for h in headers} == {study["manufacturer"]}
        study_uids |= {h.StudyInstanceUID for h in headers}
        frames |= {h.FrameOfReferenceUID for h in headers}
        for tag in ("EchoTime", "RepetitionTime", "MRAcquisitionType", "ScanningSequence"):
            assert tag in headers[0], (key, tag)
    assert len(study_uids) == 1 and len(frames) == 1
    t1ce, t1 = _headers(study["dicom"]["t1ce"])[0], _headers(study["dicom"]["t1"])[0]
    assert t1ce.ContrastBolusAgent == protocol["agent"] and "ContrastBolusAgent" not in t1
    flair = _headers(study["dicom"]["flair"])[0]
    assert float(flair.InversionTime) == protocol["flair"][1]["InversionTime"]
    dwi = _headers(study["dicom"]["dwi"])
    assert sorted({float(h.DiffusionBValue) for h in dwi}) == [0.0, 500.0, 1000.0]
    assert len({h.InstanceNumber for h in dwi}) == len(dwi)
    assert "ADC" in _headers(study["dicom"]["adc"])[0].ImageType
    localizer = _headers(study["dicom"]["localizer"])
    assert len({tuple(h.ImageOrientationPatient) for h in localizer}) == 3  # three planes


def test_nifti_files_carry_dcm2niix_like_sidecars_and_the_truth_is_on_the_t1ce_grid(study):
    meta = json.loads(Path(study["nifti"]["flair"].replace(".nii.gz", ".json")).read_text())
    protocol = VENDOR_PROTOCOLS[study["manufacturer"]]["flair"][1]
    assert meta["InversionTime"] == pytest.approx(protocol["InversionTime"] / 1000.0)  # seconds, as BIDS
    assert Path(study["nifti"]["dwi"].replace(".nii.gz", ".bval")).read_text().split() == ["1000"]
    assert "localizer" not in study["nifti"]
    reference = sitk.ReadImage(study["nifti"]["t1ce"])
    for name in ("seg", "brain_mask", "t1", "flair"):
        truth = sitk.ReadImage(study["truth"][name])
        assert truth.GetSize() == reference.GetSize()
        assert truth.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-3)


def test_options_make_bad_studies(tmp_path):
    study = make_head_study(
        tmp_path, seed=1, resolution_mm=5.0, voxel_scale=5.0, extra_t1ce=True, frame_of_reference=False
    )
    assert "t1ce_2" in study["dicom"]
    headers = _headers(study["dicom"]["t1ce_2"])
    assert headers[0].ContrastBolusAgent and headers[0].MRAcquisitionType == "3D"
    assert all("FrameOfReferenceUID" not in h for h in _headers(study["dicom"]["t1ce"]))
