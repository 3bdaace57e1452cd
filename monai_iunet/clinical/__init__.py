"""The clinical path: unregistered MR series of a scanner export in, a segmentation on the reference scan out.

- :mod:`~monai_iunet.clinical.series`: which series of a study is T1, T1ce, T2, FLAIR (tags, then descriptions);
- :mod:`~monai_iunet.clinical.io`: reading DICOM series and image files (SimpleITK), patient/study checks;
- :mod:`~monai_iunet.clinical.registration`: rigid mutual-information registration to the reference series;
- :mod:`~monai_iunet.clinical.preprocessing`: resampling onto the reference grid, N4, brain masks;
- :mod:`~monai_iunet.clinical.inference`: the bundle's own network, inferer and postprocessing;
- :mod:`~monai_iunet.clinical.outputs`: NIfTI, DICOM-SEG (highdicom), report, overview, atomic output folder;
- :mod:`~monai_iunet.clinical.brain_extraction`: whether to extract the brain, deepbet, the filled mask;
- :mod:`~monai_iunet.clinical.volumes_sr`: the volumes as a DICOM SR (TID 1500) referencing the SEG;
- :mod:`~monai_iunet.clinical.pipeline`: :func:`segment`, all of it;
- :mod:`~monai_iunet.clinical.study`: a study folder in: its series found, identified, segmented;
- :mod:`~monai_iunet.clinical.dicomweb`: a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS; ``dicomweb-client``);
- :mod:`~monai_iunet.clinical.study_sources`: a study on a PACS or in a folder, segmented, results stored back;
- :mod:`~monai_iunet.clinical.cohort`: whole cohorts, resumable, into ``cohort.csv``
  (:mod:`~monai_iunet.clinical.cohort_table`).

Synthetic scanner exports with known motion, to test against, are test data: :mod:`monai_iunet.data.synthetic_exports`.

Example::

    from monai_iunet.clinical import segment

    report = segment(t1="dicom/t1", t1ce="dicom/t1ce", t2="dicom/t2", flair="dicom/flair", output="results")
    print(report["volumes_ml"])  # {"TC": ..., "WT": ..., "ET": ...}
"""

from __future__ import annotations

from monai_iunet.clinical.inference import BundleSegmenter
from monai_iunet.clinical.io import ClinicalInputError, Series, check_same_study, read_series
from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE, RegistrationWarning, segment
from monai_iunet.clinical.registration import RegistrationResult, register_rigid
from monai_iunet.clinical.series import (
    AmbiguousSeriesError,
    SeriesIdentificationError,
    SeriesInfo,
    choice_table,
    identify_series,
)
from monai_iunet.clinical.study import scan_study, segment_study

__all__ = [
    "AmbiguousSeriesError",
    "SeriesIdentificationError",
    "SeriesInfo",
    "choice_table",
    "identify_series",
    "scan_study",
    "segment_study",
    "DEFAULT_BUNDLE",
    "BundleSegmenter",
    "ClinicalInputError",
    "RegistrationResult",
    "RegistrationWarning",
    "Series",
    "check_same_study",
    "read_series",
    "register_rigid",
    "segment",
]
