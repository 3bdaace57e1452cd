"""The tumour volumes as a DICOM Structured Report (TID 1500 measurement report, highdicom), beside the DICOM-SEG.

One "Volumetric ROI measurements" group per region (TC, WT, ET), each holding the volume in mL and referencing its
segment of the DICOM-SEG (and, through it, the reference series): what a PACS shows and a research database ingests.

Example::

    write_volumes_sr("segmentation.dcm", {"TC": 12.1, "WT": 40.3, "ET": 8.0}, "volumes_sr.dcm", t1ce_files)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

__all__ = ["write_volumes_sr"]


def write_volumes_sr(
    segmentation: str | os.PathLike,
    volumes_ml: Mapping[str, float],
    path: str | os.PathLike,
    reference_files: Sequence[str | os.PathLike] = (),
) -> None:
    """Write a TID 1500 Comprehensive 3D SR with one volume per segment of ``segmentation``.

    Args:
        segmentation: the DICOM-SEG file written by :func:`~monai_iunet.clinical.outputs.write_dicom_seg`; its
            segment labels end in the region name in parentheses (``"Whole tumour (WT)"``).
        volumes_ml: volume of each region in mL (``{"TC": ..., "WT": ..., "ET": ...}``).
        path: the ``.dcm`` file to write.
        reference_files: the segmented series' DICOM files (their headers are the SR's evidence with the SEG).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    import monai_iunet

    seg = hd.seg.segread(str(segmentation))
    algorithm = hd.sr.AlgorithmIdentification(name="monai-iunet BraTS iUNet", version=monai_iunet.__version__)
    groups = []
    for description in seg.SegmentSequence:
        region = str(description.SegmentLabel).rsplit("(", 1)[-1].rstrip(")")
        if region not in volumes_ml:
            continue
        volume = hd.sr.Measurement(
            name=codes.SCT.Volume,
            value=float(volumes_ml[region]),
            unit=hd.sr.CodedConcept("mL", "UCUM", "milliliter"),
            algorithm_id=algorithm,
        )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=str(description.SegmentLabel)),
                referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, description.SegmentNumber),
                finding_type=codes.SCT.Neoplasm,
                measurements=[volume],
                algorithm_id=algorithm,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="monai-iunet", manufacturer_name="monai-iunet", model_name="brats_iunet"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.BrainMRI,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *(pydicom.dcmread(str(f), stop_before_pixels=True) for f in reference_files)],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=301,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="monai-iunet",
        series_description="iUNet tumour volumes",
        is_complete=True,
    )
    sr.save_as(str(path))
