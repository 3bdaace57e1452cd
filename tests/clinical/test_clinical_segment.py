"""``monai_iunet.clinical.segment`` / ``monai-iunet segment`` end to end, on DICOM and NIfTI exports, and bad inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from clinical_data import make_bundle_with_weights

from monai_iunet.brats import MODALITY_ORDER
from monai_iunet.cli import main
from monai_iunet.clinical import ClinicalInputError, read_series, segment
from monai_iunet.data.synthetic_exports import make_scanner_export

from conftest import draw_progress


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle_with_weights(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return make_scanner_export(tmp_path_factory.mktemp("export"), spatial_size=48, seed=5)


@pytest.fixture(scope="module")
def dicom_result(export, bundle, tmp_path_factory):
    output = tmp_path_factory.mktemp("results") / "case"
    report = segment(**export["dicom"], output=output, bundle=bundle, save_preprocessed=True, device="cpu")
    return output, report


def _assert_same_grid(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetSize() == reference.GetSize()
    assert np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    assert np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-5)


def test_dicom_outputs_on_reference_grid(export, dicom_result):
    output, report = dicom_result
    assert sorted(p.name for p in output.iterdir()) == [
        "overview.png",
        "preprocessed",
        "report.json",
        "segmentation.dcm",
        "segmentation.nii.gz",
        "volumes_sr.dcm",
    ]
    reference = read_series("t1ce", export["dicom"]["t1ce"]).image
    label = sitk.ReadImage(str(output / "segmentation.nii.gz"))
    _assert_same_grid(label, reference)
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2, 4}
    assert sitk.GetArrayFromImage(label).any()
    for name in MODALITY_ORDER:
        _assert_same_grid(sitk.ReadImage(str(output / "preprocessed" / f"{name}.nii.gz")), reference)
    assert not list(output.parent.glob(".*partial"))


def test_dicom_seg_references_the_reference_series(export, dicom_result):
    output, _ = dicom_result
    seg = hd.seg.segread(str(output / "segmentation.dcm"))
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [
        "Tumour core (TC)",
        "Whole tumour (WT)",
        "Enhancing tumour (ET)",
    ]
    assert all(d.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006" for d in seg.SegmentSequence)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(Path(export["dicom"]["t1ce"]).iterdir())]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == headers[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == headers[0].StudyInstanceUID and seg.PatientID == headers[0].PatientID
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {h.SOPInstanceUID for h in headers}
    # the whole-tumour segment equals the NIfTI label map > 0, slice by slice on the reference instances
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(output / "segmentation.nii.gz")))
    reference_files = read_series("t1ce", export["dicom"]["t1ce"]).files
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in reference_files]
    volume = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[2])[..., 0]
    assert np.array_equal(volume > 0, label > 0)


def test_report(export, dicom_result):
    output, report = dicom_result
    on_disk = json.loads((output / "report.json").read_text())
    assert on_disk["volumes_ml"] == pytest.approx(report["volumes_ml"])
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(output / "segmentation.nii.gz")))
    assert on_disk["volumes_ml"]["WT"] == pytest.approx((label > 0).sum() / 1000.0)  # 1 mm voxels
    assert on_disk["volumes_ml"]["ET"] == pytest.approx((label == 4).sum() / 1000.0)
    assert on_disk["volumes_ml"]["TC"] >= on_disk["volumes_ml"]["ET"]
    assert set(on_disk["registration"]) == {"t1", "t2", "flair"}
    for metrics in on_disk["registration"].values():
        assert not metrics["failed"] and metrics["metric_final"] < metrics["metric_initial"]
        assert 0.0 < metrics["rotation_deg"] < 30.0
    assert on_disk["inputs"]["t1ce"]["SeriesDescription"] == "T1 post-contrast"
    assert {"read_s", "register_resample_s", "inference_s", "write_s", "total_s"} <= set(on_disk["timings"])
    assert {"monai_iunet", "monai", "torch", "SimpleITK", "highdicom"} <= set(on_disk["versions"])


def test_nifti_inputs_with_brain_mask_and_overwrite(export, bundle, tmp_path, capsys, monkeypatch):
    output = tmp_path / "nifti"
    args = [f"--{m}={export['nifti'][m]}" for m in MODALITY_ORDER]
    common = [*args, "--output", str(output), "--bundle", str(bundle), "--device", "cpu"]
    assert main(["segment", *common, "--brain-mask", export["truth"]["brain_mask"]]) == 0
    assert "\r" not in capsys.readouterr().err  # stderr is no terminal here: no progress bar
    assert sorted(p.name for p in output.iterdir()) == [
        "brain_mask.nii.gz",  # the mask used, beside the segmentation
        "overview.png",
        "report.json",
        "segmentation.nii.gz",
    ]
    reference = sitk.ReadImage(export["nifti"]["t1ce"])
    label = sitk.ReadImage(str(output / "segmentation.nii.gz"))
    _assert_same_grid(label, reference)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(export["truth"]["brain_mask"])) > 0
    first = sitk.GetArrayFromImage(label)
    # an existing result is kept unless --overwrite
    assert main(["segment", *common]) == 2
    assert "already holds results" in capsys.readouterr().err
    draw_progress(monkeypatch)
    assert main(["segment", *common, "--overwrite", "--save-preprocessed", "--n4"]) == 0
    steps = capsys.readouterr().err  # a bar over the steps, the step in progress beside it, the time left
    eta = r"\[\d\d:\d\d<\d\d:\d\d"
    assert re.search(rf"nifti: .*1/\d {eta}.*step.*, n4\b", steps) and re.search(rf"(\d)/\1 {eta}.*, write\b", steps)
    for step in ("register resample", "inference"):
        assert step in steps
    assert (output / "preprocessed" / "flair.nii.gz").is_file()
    report = json.loads((output / "report.json").read_text())
    assert report["preprocessing"]["n4"] and "n4_s" in report["timings"]
    assert first.shape == mask.shape


def _copy(files, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f"{Path(f).parent.name}_{Path(f).name}")
    return folder


def _bad_inputs(export, tmp: Path) -> dict[str, tuple[dict, str]]:
    """Bad input cases: (changes to the arguments, words the message must hold)."""
    t1 = sorted(Path(export["dicom"]["t1"]).iterdir())
    t2 = sorted(Path(export["dicom"]["t2"]).iterdir())
    (tmp / "empty").mkdir(parents=True)
    (tmp / "no_dicom").mkdir()
    (tmp / "no_dicom" / "notes.txt").write_text("not an image")
    report = pydicom.Dataset()
    report.PatientID, report.SOPClassUID, report.SOPInstanceUID = "X", "1.2.840.10008.5.1.4.1.1.88.11", "1.2.3"
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.save_as(tmp / "no_dicom" / "report.dcm", enforce_file_format=True)
    other_patient = _copy(t2, tmp / "other_patient")
    for f in other_patient.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientID = "SOMEONE-ELSE"
        ds.save_as(f)
    (tmp / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a gzip file")
    other_grid_mask = export["nifti"]["t2"]
    return {
        "empty folder": ({"t1": tmp / "empty"}, ["--t1", "empty"]),
        "no image DICOM": ({"t2": tmp / "no_dicom"}, ["--t2", "no DICOM image"]),
        "several series": ({"t1": _copy(t1 + t2, tmp / "two_series")}, ["--t1", "2 DICOM series", "--series-uid"]),
        "mixed patients": ({"t2": other_patient}, ["PatientID", "SOMEONE-ELSE", "--allow-mixed-studies"]),
        "single slice": ({"flair": _copy(t1[:1], tmp / "one_slice")}, ["--flair", "single-slice"]),
        "unreadable file": ({"t1ce": tmp / "broken.nii.gz"}, ["--t1ce", "broken.nii.gz", "cannot be read"]),
        "mask on another grid": ({"brain_mask": other_grid_mask}, ["--brain-mask", "another grid"]),
        "missing path": ({"t1": tmp / "nowhere"}, ["--t1", "no such file"]),
    }


def test_bad_inputs_are_named_and_leave_nothing(export, bundle, tmp_path, capsys):
    for case, (changes, words) in _bad_inputs(export, tmp_path / "inputs").items():
        inputs = {**export["dicom"], **changes}
        output = tmp_path / "out" / case.replace(" ", "_")
        argv = ["segment", "--output", str(output), "--bundle", str(bundle)]
        for key, value in inputs.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        assert main(argv) == 2, case
        err = capsys.readouterr().err
        assert "Traceback" not in err
        for word in words:
            assert word in err, (case, err)
        assert not output.exists(), case
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # no partial results


def test_failed_registration_is_an_error_unless_accepted(bundle, tmp_path):
    export = make_scanner_export(
        tmp_path / "knee", spatial_size=40, seed=2, formats=("nifti",), other_body_part=("t2",)
    )
    with pytest.raises(ClinicalInputError, match="--t2 .* looks failed"):
        segment(**export["nifti"], output=tmp_path / "out", bundle=bundle)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    with pytest.warns(UserWarning, match="looks failed"):
        report = segment(**export["nifti"], output=tmp_path / "out", bundle=bundle, accept_failed_registration=True)
    assert report["registration"]["t2"]["failed"]


def test_command_line_error_has_no_traceback(export, tmp_path):
    args = [f"--{m}={export['dicom'][m]}" for m in MODALITY_ORDER]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "monai_iunet.cli", "segment", *args, f"--t2={empty}", "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--t2" in result.stderr and "empty" in result.stderr
