"""The synthetic scanner exports (headers, grids, truth) and the registration recovering their known motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from clinical_data import ncc, read_array

from monai_iunet.clinical import read_series, register_rigid
from monai_iunet.clinical.preprocessing import resample_to_reference
from monai_iunet.data.synthetic_exports import ACQUISITIONS, SERIES_DESCRIPTIONS, make_scanner_export


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return make_scanner_export(root, spatial_size=48, seed=3)


def test_dicom_headers(export):
    study_uids, frames, patients = set(), set(), set()
    for name, folder in export["dicom"].items():
        files = sorted(Path(folder).glob("*.dcm"))
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        assert len({h.SeriesInstanceUID for h in headers}) == 1
        assert len({h.SOPInstanceUID for h in headers}) == len(headers)
        first = headers[0]
        assert first.SeriesDescription == SERIES_DESCRIPTIONS[name]
        assert first.Modality == "MR" and first.SOPClassUID == pydicom.uid.MRImageStorage
        spacing = ACQUISITIONS[name]["spacing"]
        assert np.allclose([float(v) for v in first.PixelSpacing], [spacing[1], spacing[0]])
        assert float(first.SliceThickness) == pytest.approx(spacing[2])
        iop = np.asarray(first.ImageOrientationPatient, dtype=float)
        tilt = np.rad2deg(np.arccos(np.clip(np.cross(iop[:3], iop[3:])[2], -1, 1)))
        assert tilt == pytest.approx(np.linalg.norm(ACQUISITIONS[name]["tilt"]), abs=1e-3)
        normal = np.cross(iop[:3], iop[3:])
        positions = sorted(float(np.dot(normal, np.asarray(h.ImagePositionPatient, float))) for h in headers)
        assert np.allclose(np.diff(positions), spacing[2], atol=1e-3)
        study_uids.add(first.StudyInstanceUID)
        frames.add(first.FrameOfReferenceUID)
        patients.add(first.PatientID)
        # the same volume is in the NIfTI file
        assert np.allclose(
            sitk.GetArrayFromImage(read_series(name, folder).image),
            sitk.GetArrayFromImage(read_series(name, export["nifti"][name]).image),
        )
    assert len(study_uids) == len(frames) == len(patients) == 1


def test_truth_on_reference_grid(export):
    reference = read_series("t1ce", export["dicom"]["t1ce"]).image
    for name in ("t1", "t1ce", "t2", "flair", "seg", "brain_mask"):
        truth = sitk.ReadImage(export["truth"][name])
        assert truth.GetSize() == reference.GetSize()
        assert np.allclose(truth.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        assert np.allclose(truth.GetDirection(), reference.GetDirection(), atol=1e-5)
    assert set(np.unique(read_array(export["truth"]["seg"]))) == {0, 1, 2, 4}
    motion = json.loads(open(export["truth"]["motion"]).read())
    assert np.allclose(motion["t1ce"]["angles_deg"], 0) and np.allclose(motion["t1ce"]["translation_mm"], 0)
    for name in ("t1", "t2", "flair"):  # several degrees, several mm
        assert np.abs(motion[name]["angles_deg"]).max() >= 3.0
        assert np.abs(motion[name]["translation_mm"]).max() >= 3.0


@pytest.mark.parametrize("name, max_tre_mm, min_ncc", [("t1", 1.5, 0.9), ("flair", 1.5, 0.9), ("t2", 2.0, 0.75)])
def test_registration_recovers_motion(export, name, max_tre_mm, min_ncc):
    reference = read_series("t1ce", export["dicom"]["t1ce"]).image
    moving = read_series(name, export["dicom"][name]).image
    result = register_rigid(reference, moving)
    assert not result.failed, result.problems
    m = json.loads(open(export["truth"]["motion"]).read())[name]
    true = sitk.Euler3DTransform(m["centre_mm"], *np.deg2rad(m["angles_deg"]), m["translation_mm"])
    mask = read_array(export["truth"]["brain_mask"]) > 0
    points = [reference.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in np.argwhere(mask)[::97]]
    tre = np.mean(
        [np.linalg.norm(np.subtract(result.transform.TransformPoint(p), true.TransformPoint(p))) for p in points]
    )
    assert tre < max_tre_mm
    truth = read_array(export["truth"][name])
    registered = sitk.GetArrayFromImage(resample_to_reference(moving, reference, result.transform))
    unregistered = sitk.GetArrayFromImage(resample_to_reference(moving, reference, sitk.Transform()))
    assert ncc(registered, truth, mask) >= min_ncc
    assert ncc(unregistered, truth, mask) < 0.6
    assert result.metric_final < result.metric_initial  # Mattes MI is negative: lower is better


def test_registration_of_another_body_part_fails(tmp_path):
    export = make_scanner_export(tmp_path, spatial_size=40, seed=1, formats=("nifti",), other_body_part=("t2",))
    reference = read_series("t1ce", export["nifti"]["t1ce"]).image
    result = register_rigid(reference, read_series("t2", export["nifti"]["t2"]).image)
    assert result.failed and "Dice" in result.problems[0]
