"""``segment --study``: a whole-head study folder in, series identified, brain extracted, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from clinical_data import make_bundle_with_weights, read_array

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical import AmbiguousSeriesError, identify_series, scan_study, segment_study
from monai_iunet.clinical.series import SeriesInfo, classify_series
from monai_iunet.data.synthetic_study import VENDOR_PROTOCOLS, make_head_study

SMALL = {"resolution_mm": 4.0, "voxel_scale": 4.0}  # a T1ce of 64 x 64 x 38 voxels


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The test bundle, its network run on a 4 mm grid so that a whole head stays small."""
    root = make_bundle_with_weights(tmp_path_factory.mktemp("bundle") / "bundle")
    config = json.loads((root / "configs" / "inference.json").read_text())
    config["pixdim"] = [4.0, 4.0, 4.0]
    (root / "configs" / "inference.json").write_text(json.dumps(config, indent=4))
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_head_study(tmp_path_factory.mktemp("study"), seed=0, formats=("dicom", "nifti"), **SMALL)


@pytest.mark.parametrize("manufacturer", sorted(VENDOR_PROTOCOLS))
def test_every_vendor_protocol_is_identified_from_its_tags(manufacturer):
    protocol = VENDOR_PROTOCOLS[manufacturer]
    infos = []
    for number, key in enumerate(protocol["order"], start=1):
        description, tags = protocol[key]
        agent = protocol["agent"] if key == "t1ce" else ""
        infos.append(
            SeriesInfo(
                key,
                description,
                series_number=number,
                echo_time=tags.get("EchoTime"),
                repetition_time=tags.get("RepetitionTime"),
                inversion_time=tags.get("InversionTime"),
                scanning_sequence="\\".join(np.atleast_1d(tags.get("ScanningSequence", ""))),
                acquisition_type=tags.get("MRAcquisitionType", ""),
                image_type=tuple(tags.get("ImageType", ("ORIGINAL", "PRIMARY"))),
                contrast_agent=agent,
                n_instances=3 if key == "localizer" else 30,
            )
        )
    chosen = identify_series(infos)
    assert {m: info.series_uid for m, info in chosen.items()} == {m: m.value for m in MODALITY_ORDER}
    assert all(classify_series(chosen[m]).by == "tags" for m in MODALITY_ORDER)


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_dicom_and_nifti_studies_are_identified(study, fmt):
    infos = scan_study(Path(study["dicom" if fmt == "dicom" else "nifti"]["t1"]).parent)
    assert len(infos) == (7 if fmt == "dicom" else 6)  # the NIfTI export has no localizer
    chosen = identify_series(infos)
    for modality in MODALITY_ORDER:  # the sidecars carry the SeriesInstanceUID, as dcm2niix can write it
        assert chosen[modality].series_uid == study["series"][modality.value]
        if fmt == "nifti":
            assert chosen[modality].path == study["nifti"][modality.value]
    if fmt == "dicom":
        assert chosen[Modality.T1CE].frame_of_reference_uid == study["study"]["FrameOfReferenceUID"]
        assert len(chosen[Modality.T1CE].files) == chosen[Modality.T1CE].n_instances


def test_a_study_with_two_t1ce_candidates_is_refused_with_both_listed(tmp_path):
    study = make_head_study(tmp_path / "study", seed=3, extra_t1ce=True, **SMALL)
    folder = Path(study["dicom"]["t1"]).parent
    result = subprocess.run(
        [sys.executable, "-m", "monai_iunet.cli", "segment", "--study", str(folder), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert study["series"]["t1ce"] in result.stderr and study["series"]["t1ce_2"] in result.stderr
    assert "--t1ce SERIES_UID" in result.stderr
    assert "#" in result.stdout and "description" in result.stdout  # the table is shown before the refusal
    assert not (tmp_path / "o").exists()
    with pytest.raises(AmbiguousSeriesError):
        segment_study(folder, tmp_path / "o2", bundle="unused")
    infos = scan_study(folder)  # an override resolves it
    assert identify_series(infos, {Modality.T1CE: study["series"]["t1ce_2"]})[Modality.T1CE].description.endswith(
        "repeat"
    )


@pytest.mark.slow
def test_whole_head_dicom_study_is_brain_extracted_and_everything_written(study, bundle, tmp_path):
    out = tmp_path / "out"
    report = segment_study(Path(study["dicom"]["t1"]).parent, out, bundle=bundle, device="cpu")
    assert report["skull_strip"]["extract"] and report["skull_strip"]["method"] == "deepbet"
    assert "whole-head" in report["skull_strip"]["reason"]
    assert {m: report["series"][m]["SeriesInstanceUID"] for m in ("t1", "t1ce", "t2", "flair")} == {
        m: study["series"][m] for m in ("t1", "t1ce", "t2", "flair")
    }
    expected = {"segmentation.nii.gz", "segmentation.dcm", "volumes_sr.dcm", "brain_mask.nii.gz", "report.json"}
    assert expected | {"overview.png"} == {p.name for p in out.iterdir()} and report["not_written"] == {}
    mask, truth = read_array(out / "brain_mask.nii.gz") > 0, read_array(study["truth"]["brain_mask"]) > 0
    assert 2.0 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.9
    sr = hd.sr.srread(str(out / "volumes_sr.dcm"))
    seg = hd.seg.segread(str(out / "segmentation.dcm"))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert [g.get_measurements()[0].value for g in groups] == pytest.approx(
        [report["volumes_ml"][r] for r in ("TC", "WT", "ET")], rel=1e-6
    )
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == seg.StudyInstanceUID
    referenced = {
        s.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for e in sr.CurrentRequestedProcedureEvidenceSequence
        for s in e.ReferencedSeriesSequence
        if hasattr(s, "ReferencedSOPSequence")
    }
    assert seg.SOPInstanceUID in referenced or seg.SeriesInstanceUID in {
        s.SeriesInstanceUID for e in sr.CurrentRequestedProcedureEvidenceSequence for s in e.ReferencedSeriesSequence
    }


@pytest.mark.slow
def test_a_source_without_frame_of_reference_loses_only_the_dicom_outputs(bundle, tmp_path, capsys):
    study = make_head_study(tmp_path / "study", seed=1, frame_of_reference=False, **SMALL)
    out = tmp_path / "out"
    code = subprocess.run(
        [sys.executable, "-m", "monai_iunet.cli", "segment", "--study", str(Path(study["dicom"]["t1"]).parent),
         "--output", str(out), "--bundle", str(bundle), "--device", "cpu", "--skull-strip", "none"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert code.returncode == 0, code.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["not_written"]) == {"segmentation.dcm", "volumes_sr.dcm"}
    assert "FrameOfReferenceUID" in report["not_written"]["segmentation.dcm"]
    assert "not written: segmentation.dcm" in code.stdout
    assert {"segmentation.nii.gz", "report.json", "overview.png"} <= {p.name for p in out.iterdir()}
    assert not (out / "segmentation.dcm").exists() and report["skull_strip"]["extract"] is False


@pytest.mark.slow
def test_nifti_study_is_segmented_and_reports_why_no_dicom_seg(study, bundle, tmp_path):
    report = segment_study(Path(study["nifti"]["t1"]).parent, tmp_path / "out", bundle=bundle, skull_strip="none")
    assert report["series"]["t1ce"]["SeriesDescription"] == VENDOR_PROTOCOLS[study["manufacturer"]]["t1ce"][0]
    assert "not DICOM" in report["not_written"]["segmentation.dcm"]
    assert read_array(tmp_path / "out" / "segmentation.nii.gz").shape == read_array(study["truth"]["seg"]).shape
