"""A synthetic glioma cohort on a PACS: studies built, uploaded over DICOMweb, then ``monai-iunet cohort`` measured.

The cohort (:data:`PLAN`): three patients with 2-4 time points each, one broken study (its FLAIR series is
missing) and one ambiguous one (two equally good T1ce series). Each study is a scanner export
(:func:`monai_iunet.clinical.make_scanner_export`) with its own StudyInstanceUID, StudyDate and a
StudyDescription "MR HEAD glioma follow-up".

Run against a DICOMweb server that is already up (an Orthanc with its DICOMweb plugin, see docs/clinical.md)::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.pacs_cohort --dicomweb http://127.0.0.1:8042/dicom-web \
        --auth-file pacs.auth --bundle /tmp/brats_demo --work /tmp/pacs_cohort
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

__all__ = ["PLAN", "CohortStudySpec", "make_cohort", "make_study", "upload"]

DESCRIPTION = "MR HEAD glioma follow-up"


@dataclass(frozen=True)
class CohortStudySpec:
    """One synthetic study: folder ``key``, patient, date, and what is wrong with it (``""``, broken, ambiguous)."""

    key: str
    patient: str
    date: str
    defect: str = ""
    seed: int = 0


PLAN: tuple[CohortStudySpec, ...] = (
    CohortStudySpec("P01_1", "GLIOMA-P01", "20230105", seed=11),
    CohortStudySpec("P01_2", "GLIOMA-P01", "20230412", seed=11),
    CohortStudySpec("P01_3", "GLIOMA-P01", "20230718", seed=11),
    CohortStudySpec("P02_1", "GLIOMA-P02", "20230220", seed=12),
    CohortStudySpec("P02_2", "GLIOMA-P02", "20230601", seed=12),
    CohortStudySpec("P03_1", "GLIOMA-P03", "20230310", seed=13),
    CohortStudySpec("P03_2", "GLIOMA-P03", "20230615", seed=13),
    CohortStudySpec("P03_3", "GLIOMA-P03", "20230920", seed=13),
    CohortStudySpec("P03_4", "GLIOMA-P03", "20231215", seed=13),
    CohortStudySpec("P02_3", "GLIOMA-P02", "20230905", defect="broken", seed=12),
    CohortStudySpec("P01_4", "GLIOMA-P01", "20231020", defect="ambiguous", seed=11),
)
"""11 studies: 3 patients with 3, 2 (+1 broken) and 4 (P01 + 1 ambiguous) time points."""


def _rewrite(folder: Path, **changes) -> None:
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(str(path))
        for key, value in changes.items():
            setattr(ds, key, value)
        ds.save_as(str(path))


def _duplicate_series(folder: Path, to: Path) -> None:
    """A second copy of a series under new Series/SOP Instance UIDs (a repeated acquisition)."""
    series_uid = generate_uid()
    to.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(str(path))
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, int(ds.SeriesNumber) + 10
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(str(to / path.name))


def make_study(root: Path, spec: CohortStudySpec, size: int = 48, time_point: int = 0) -> Path:
    """Write one study's DICOM series into ``root/spec.key`` (one folder per series); returns that folder.

    The tumour of a patient's later time points differs (another seed of the same patient), so that the volumes
    change from study to study.
    """
    from monai_iunet.data.synthetic_exports import make_scanner_export

    work = root / f".{spec.key}.export"
    export = make_scanner_export(
        work, spatial_size=size, seed=spec.seed * 100 + time_point, formats=("dicom",), patient_id=spec.patient
    )
    study = root / spec.key
    study_uid = generate_uid()
    for name, folder in export["dicom"].items():
        _rewrite(
            Path(folder),
            StudyInstanceUID=study_uid,
            StudyDate=spec.date,
            SeriesDate=spec.date,
            StudyDescription=DESCRIPTION,
        )
        shutil.move(folder, study / name)
    if spec.defect == "broken":
        shutil.rmtree(study / "flair")
    elif spec.defect == "ambiguous":
        _duplicate_series(study / "t1ce", study / "t1ce_repeat")
    shutil.rmtree(work)
    return study


def make_cohort(root: str | Path, plan: Sequence[CohortStudySpec] = PLAN, size: int = 48) -> dict[str, Path]:
    """Write every study of ``plan`` under ``root``; returns the study folders by key."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    points: dict[str, int] = {}
    studies = {}
    for spec in plan:
        points[spec.patient] = points.get(spec.patient, -1) + 1
        studies[spec.key] = make_study(root, spec, size=size, time_point=points[spec.patient])
    return studies


def upload(client, study: Path) -> int:
    """Store every DICOM file of a study folder into the server (STOW-RS); returns the number of instances."""
    datasets = [pydicom.dcmread(str(p)) for p in sorted(study.rglob("*.dcm"))]
    client.store_instances(datasets)
    return len(datasets)


def main(argv: Sequence[str] | None = None) -> int:
    from monai_iunet.cli import main as cli
    from monai_iunet.clinical.dicomweb import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dicomweb", required=True, help="DICOMweb root of a running server")
    parser.add_argument("--auth-file", default=None, help="credentials for the server")
    parser.add_argument("--bundle", default=None, help="bundle with trained weights")
    parser.add_argument("--work", default="/tmp/pacs_cohort", help="folder for the studies and the cohort output")
    parser.add_argument("--size", type=int, default=48, help="reference grid size of each study")
    args = parser.parse_args(argv)
    work = Path(args.work)
    client = connect(args.dicomweb, auth_file=args.auth_file)
    for study in make_cohort(work / "studies", size=args.size).values():
        upload(client, study)
    command = ["cohort", "--dicomweb", args.dicomweb, "--query", "StudyDescription=*glioma*"]
    command += ["--output", str(work / "out"), "--store", "--device", "cpu"]
    command += ["--auth-file", args.auth_file] if args.auth_file else []
    command += ["--bundle", args.bundle] if args.bundle else []
    return cli(command)


if __name__ == "__main__":
    raise SystemExit(main())
