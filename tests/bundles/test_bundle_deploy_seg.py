"""MONAI Deploy App SDK's DICOM-SEG writer on the bundle's label maps: consecutive labels are what it accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from highdicom.sr.coding import CodedConcept
from monai.deploy.core import Fragment
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_seg_writer_operator import DICOMSegmentationWriterOperator, SegmentDescription
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator
from pydicom.sr.codedict import codes

from monai_iunet.brats.datalist_convention import label_values
from monai_iunet.data.synthetic_exports import write_dicom_series

METADATA = Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet" / "configs" / "metadata.json"
STUDY = {
    "PatientID": "SEG-TEST",
    "PatientName": "Seg^Test",
    "StudyInstanceUID": pydicom.uid.generate_uid(),
    "FrameOfReferenceUID": pydicom.uid.generate_uid(),
    "StudyDate": "20260101",
}


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A small synthetic T1ce DICOM series, loaded as MONAI Deploy loads it, and its voxels."""
    folder = tmp_path_factory.mktemp("t1ce")
    volume = np.random.default_rng(0).uniform(100, 1000, size=(8, 24, 20)).astype(np.float32)  # (slices, rows, cols)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((1.0, 1.0, 2.0))
    write_dicom_series(image, folder, "T1 post-contrast", 3, STUDY)
    dicom_series = (
        DICOMDataLoaderOperator(Fragment(), name="loader").load_data_to_studies(folder)[0].get_all_series()[0]
    )
    to_volume = DICOMSeriesToVolumeOperator(Fragment(), name="to_volume")
    to_volume.prepare_series(dicom_series)
    voxels = to_volume.generate_voxel_data(dicom_series)
    return dicom_series, np.asarray(voxels)


def _region_names() -> list[str]:
    """The tumour regions in label order, as the bundle's metadata names the post-processed label map."""
    names = json.loads(METADATA.read_text())["network_data_format"]["post_processed_outputs"]["pred"]["channel_def"]
    return [name for value, name in sorted(names.items(), key=lambda kv: int(kv[0])) if int(value) > 0]


def _descriptions() -> list[SegmentDescription]:
    """One DICOM-SEG segment description per tumour region."""
    neoplasm = CodedConcept("108369006", "SCT", "Neoplasm")
    return [
        SegmentDescription(
            segment_label=name,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=neoplasm,
            algorithm_name="monai-iunet brats_iunet",
            algorithm_family=codes.DCM.ArtificialIntelligence,
            algorithm_version="0.2.0",
        )
        for name in _region_names()
    ]


def _label_map(shape, convention: str) -> np.ndarray:
    """Necrotic core, edema and enhancing tumour in three slabs, with the convention's label values."""
    necrosis, edema, enhancing = label_values(convention)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:3], labels[3:5], labels[5:7] = necrosis, edema, enhancing
    return labels


def test_deploy_dicom_seg_writer_takes_consecutive_labels(series, tmp_path):
    dicom_series, voxels = series
    writer = DICOMSegmentationWriterOperator(
        Fragment(), segment_descriptions=_descriptions(), output_folder=tmp_path, name="seg_writer"
    )
    labels = _label_map(voxels.shape, "msd")  # what the bundle writes for an image given in memory (Deploy)
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]
    writer.create_dicom_seg(labels, dicom_series, tmp_path)
    (written,) = list(tmp_path.glob("*.dcm"))
    seg = pydicom.dcmread(written)
    assert seg.Modality == "SEG"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == _region_names()
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {i.get_native_sop_instance().SOPInstanceUID for i in dicom_series.get_sop_instances()}


def test_deploy_dicom_seg_writer_rejects_the_brats2021_gap(series, tmp_path):
    """Why the consecutive convention exists: labels {1, 2, 4} leave segment 4 without a description."""
    dicom_series, voxels = series
    writer = DICOMSegmentationWriterOperator(
        Fragment(), segment_descriptions=_descriptions(), output_folder=tmp_path, name="seg_writer"
    )
    with pytest.raises(ValueError, match="description"):
        writer.create_dicom_seg(_label_map(voxels.shape, "brats2021"), dicom_series, tmp_path)
