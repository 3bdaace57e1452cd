"""The volumes SR (TID 1500) beside the DICOM-SEG (monai_iunet.clinical.volumes_sr)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from monai_iunet.brats import BRATS2021
from monai_iunet.clinical import read_series
from monai_iunet.clinical.outputs import label_image, region_volumes_ml, write_dicom_seg
from monai_iunet.clinical.volumes_sr import write_volumes_sr
from monai_iunet.data.synthetic_exports import make_scanner_export


def test_one_volume_per_region_referencing_its_segment(tmp_path):
    export = make_scanner_export(tmp_path / "export", spatial_size=20, formats=("dicom",))
    reference = read_series("t1ce", export["dicom"]["t1ce"])
    label = np.zeros(reference.image.GetSize(), np.uint8)
    label[6:12, 6:12, 6:12] = 2
    label[8:10, 8:10, 8:11] = 4
    label[8:9, 8:9, 8:9] = 1
    image = label_image(label, reference.image)
    write_dicom_seg(image, BRATS2021, reference.files, tmp_path / "seg.dcm")
    volumes = region_volumes_ml(image, BRATS2021)
    write_volumes_sr(tmp_path / "seg.dcm", volumes, tmp_path / "sr.dcm", reference.files)

    sr, seg = hd.sr.srread(str(tmp_path / "sr.dcm")), hd.seg.segread(str(tmp_path / "seg.dcm"))
    assert sr.StudyInstanceUID == seg.StudyInstanceUID and sr.PatientID == seg.PatientID
    groups = sr.content.get_volumetric_roi_measurement_groups()
    names = [str(g.tracking_identifier).rsplit("(", 1)[-1].rstrip(")") for g in groups]
    assert names == ["TC", "WT", "ET"]
    for group, name in zip(groups, names):
        measurement = group.get_measurements()[0]
        assert measurement.value == pytest.approx(volumes[name]) and measurement.unit.value == "mL"
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert volumes["WT"] > volumes["TC"] > 0
