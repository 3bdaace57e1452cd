"""A synthetic glioma cohort on a PACS: studies built, uploaded over DICOMweb, then ``monai-iunet cohort`` measured.

The cohort (:data:`PLAN`): three patients with 2-4 time points each, one broken study (its FLAIR series is
missing) and one ambiguous one (two equally good T1ce series). Each study is a scanner export
(:func:`monai_iunet.clinical.make_scanner_export`) with its own StudyInstanceUID, StudyDate and a
StudyDescription "MR HEAD glioma follow-up".

The measurement (:func:`measure`) starts a fresh Orthanc with its DICOMweb plugin (the tests' server,
``tests/clinical/orthanc_server.py``), uploads the cohort by STOW-RS, runs ``monai-iunet cohort --store`` in a
subprocess, kills it (SIGKILL) once ``--kill-after`` studies are finished, runs it again, and records what the
cohort folder and the PACS (QIDO-RS, and Orthanc's own listing) hold::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.pacs_cohort --whole-head --size 96 --work /tmp/pacs_cohort
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from monai_iunet.brats import Modality

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
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
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


def _export(work: Path, spec: CohortStudySpec, size: int, time_point: int, whole_head: bool) -> dict[str, str]:
    """The series folders of one synthetic study: a whole-head scanner study, or a skull-stripped export."""
    seed = spec.seed * 100 + time_point
    if whole_head:
        from monai_iunet.data.synthetic_study import make_head_study

        scale = 256 / size  # the T1ce grid is 256 x 256 x 150 at scale 1
        study = make_head_study(
            work, seed=seed, voxel_scale=scale, extra_t1ce=spec.defect == "ambiguous", patient_id=spec.patient
        )
        return study["dicom"]
    from monai_iunet.data.synthetic_exports import make_scanner_export

    export = make_scanner_export(work, spatial_size=size, seed=seed, formats=("dicom",), patient_id=spec.patient)
    if spec.defect == "ambiguous":
        repeat = f"{Modality.T1CE}_repeat"
        _duplicate_series(Path(export["dicom"][Modality.T1CE]), work / repeat)
        export["dicom"][repeat] = str(work / repeat)
    return export["dicom"]


def make_study(
    root: Path, spec: CohortStudySpec, size: int = 48, time_point: int = 0, whole_head: bool = False
) -> Path:
    """Write one study's DICOM series into ``root/spec.key`` (one folder per series); returns that folder.

    A patient's later time points are other draws (another seed), so that the volumes change from study to study.
    A ``broken`` study lacks its FLAIR series; an ``ambiguous`` one has a second, equally good T1ce series.
    """
    work = root / f".{spec.key}.export"
    series = _export(work, spec, size, time_point, whole_head)
    study = root / spec.key
    study_uid = generate_uid()
    for name, folder in series.items():
        if spec.defect == "broken" and name == Modality.FLAIR:
            continue
        _rewrite(Path(folder), StudyInstanceUID=study_uid, StudyDate=spec.date, StudyDescription=DESCRIPTION)
        shutil.move(folder, study / name)
    shutil.rmtree(work)
    return study


def make_cohort(
    root: str | Path, plan: Sequence[CohortStudySpec] = PLAN, size: int = 48, whole_head: bool = False
) -> dict[str, Path]:
    """Write every study of ``plan`` under ``root``; returns the study folders by key."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    points: dict[str, int] = {}
    studies = {}
    for spec in plan:
        points[spec.patient] = points.get(spec.patient, -1) + 1
        studies[spec.key] = make_study(root, spec, size, points[spec.patient], whole_head)
    return studies


def upload(client, study: Path) -> int:
    """Store every DICOM file of a study folder into the server (STOW-RS); returns the number of instances."""
    datasets = [pydicom.dcmread(str(p)) for p in sorted(study.rglob("*.dcm"))]
    client.store_instances(datasets)
    return len(datasets)


def _study_json(out: Path) -> dict[str, tuple[str, int]]:
    return {p.parent.name: (p.read_text(), p.stat().st_mtime_ns) for p in out.glob("*/study.json")}


def _run_killed(command: list[str], env: dict, out: Path, kill_after: int) -> float:
    """Run the cohort and kill it (SIGKILL) once ``kill_after`` studies are finished; returns its wall time."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(_study_json(out)) < kill_after and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return time.perf_counter() - start


def _in_pacs(server, client, uid: str) -> dict:
    """What the PACS shows of a study: this tool's results by QIDO-RS, and Orthanc's own listing of its series."""
    from monai_iunet.clinical.dicomweb import DICOMwebStudy
    from monai_iunet.clinical.study_sources import earlier_results

    qido = [
        f"{r['Modality']} v{r['version']} #{r['SeriesNumber']}" for r in earlier_results(DICOMwebStudy(client, uid))
    ]
    listing = [s for s in server.rest("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == uid]
    series = [server.rest(f"/series/{s}")["MainDicomTags"] for s in (listing[0]["Series"] if listing else [])]
    return {
        "qido": sorted(qido),
        "orthanc": sorted(f"{t.get('Modality')} {t.get('SeriesDescription', '')}" for t in series),
    }


def measure(work: Path, size: int, whole_head: bool, bundle: str | None, kill_after: int = 3) -> dict:
    """Build the cohort, upload it to a fresh Orthanc, run ``monai-iunet cohort --store``, kill it after
    ``kill_after`` finished studies, run it again, and check what the PACS and the cohort folder hold."""
    from monai_iunet.clinical.dicomweb import connect
    from tests.clinical.clinical_data import make_bundle_with_weights
    from tests.clinical.orthanc_server import free_port, start_orthanc

    root = Path(__file__).resolve().parents[1]
    result: dict = {"size": size, "whole_head": whole_head, "studies": len(PLAN)}
    if bundle is None:
        bundle = str(make_bundle_with_weights(work / "bundle"))
        result["bundle"] = "untrained (randomised weights; wall time only, volumes meaningless)"
    t = time.perf_counter()
    studies = make_cohort(work / "studies", size=size, whole_head=whole_head)
    result["generate_s"] = round(time.perf_counter() - t, 1)
    server = start_orthanc(work / "orthanc", http_port=free_port(), dicom_port=free_port())
    try:
        auth = work / "pacs.auth"
        auth.write_text("Authorization: Basic " + base64.b64encode(":".join(server.auth).encode()).decode())
        client = connect(server.dicomweb_url, auth_file=auth)
        t = time.perf_counter()
        result["instances"] = sum(upload(client, s) for s in studies.values())
        result["upload_s"] = round(time.perf_counter() - t, 1)
        out = work / "out"
        command = [sys.executable, "-m", "monai_iunet.cli", "cohort", "--dicomweb", server.dicomweb_url]
        command += ["--query", "StudyDescription=*glioma*", "--store", "--auth-file", str(auth), "--output", str(out)]
        command += ["--bundle", bundle, "--device", "cpu"]
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        result["first_run_s"] = round(_run_killed(command, env, out, kill_after), 1)
        before = _study_json(out)
        t = time.perf_counter()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)
        result["rerun_s"] = round(time.perf_counter() - t, 1)
        after = _study_json(out)
        result["finished_before_kill"] = sorted(before)
        result["redone_after_kill"] = sorted(k for k in before if after.get(k) != before[k])
        result["studies_with_row_after_rerun"] = len(after)
        result["rerun_exit"], result["rerun_summary"] = rerun.returncode, rerun.stdout.strip().splitlines()
        with open(out / "cohort.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row["in_pacs"] = _in_pacs(server, client, row["study_uid"]) if row["study_uid"] else {}
        result["rows"] = rows
    finally:
        server.stop()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/pacs_cohort", help="folder for the studies, the PACS and the output")
    parser.add_argument("--size", type=int, default=48, help="reference grid size of each study (voxels per side)")
    parser.add_argument("--whole-head", action="store_true", help="whole-head scanner studies (else skull-stripped)")
    parser.add_argument("--bundle", default=None, help="bundle with trained weights (default: untrained weights)")
    parser.add_argument("--kill-after", type=int, default=3, help="kill the first run after this many studies")
    parser.add_argument("--json", default="benchmarks/results/pacs_cohort_cpu.json", help="where to write the result")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"--work {work} exists; give a new folder.")
    result = measure(work, args.size, args.whole_head, args.bundle, args.kill_after)
    Path(args.json).write_text(json.dumps(result, indent=4))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
