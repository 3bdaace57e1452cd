"""``monai-iunet cohort``: a small glioma cohort on a real PACS (Orthanc), failures recorded, reruns resume."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clinical_data import make_bundle_with_weights
from orthanc_server import orthanc  # noqa: F401 - the fixture

from benchmarks.pacs_cohort import CohortStudySpec, make_cohort, upload
from monai_iunet.cli import main
from monai_iunet.clinical.cohort import _read_uids
from monai_iunet.clinical.dicomweb import DICOMwebStudy, connect
from monai_iunet.clinical.io import ClinicalInputError
from monai_iunet.clinical.study_sources import earlier_results

PLAN = (
    CohortStudySpec("A_2", "PAT-A", "20230601", seed=1),
    CohortStudySpec("A_1", "PAT-A", "20230105", seed=1),
    CohortStudySpec("B_1", "PAT-B", "20230220", seed=2),
    CohortStudySpec("B_2", "PAT-B", "20230901", defect="broken", seed=2),
    CohortStudySpec("A_3", "PAT-A", "20231020", defect="ambiguous", seed=1),
)
SIZE = 40


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("studies"), PLAN, size=SIZE)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle_with_weights(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def pacs(orthanc, studies, tmp_path_factory):  # noqa: F811
    auth = tmp_path_factory.mktemp("secret") / "pacs.auth"
    auth.write_text("Authorization: Basic " + base64.b64encode(":".join(orthanc.auth).encode()).decode())
    client = connect(orthanc.dicomweb_url, auth_file=auth)
    for study in studies.values():
        upload(client, study)
    return orthanc, auth, client


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "cohort.csv", newline="") as f:
        return {r["patient"] + "@" + r["date"]: r for r in csv.DictReader(f)}


def test_cohort_on_pacs_stores_results_and_lists_failures(pacs, bundle, tmp_path, capsys):
    server, auth, client = pacs
    out = tmp_path / "cohort"
    argv = ["cohort", "--dicomweb", server.dicomweb_url, "--query", "StudyDescription=*GLIOMA*", "--store"]
    argv += ["--auth-file", str(auth), "--output", str(out), "--bundle", str(bundle), "--device", "cpu"]
    assert main(argv) == 1  # some studies failed
    printed, stderr = capsys.readouterr()
    assert "5 studies, 3 segmented, 2 not" in printed
    assert "\r" not in stderr and "study/s" not in stderr  # stderr is no terminal here: no progress bars
    rows = _rows(out)
    assert len(rows) == 5
    first, second = rows["PAT-A@20230105"], rows["PAT-A@20230601"]
    assert [first["status"], second["status"], rows["PAT-B@20230220"]["status"]] == ["ok"] * 3
    assert rows["PAT-A@20231020"]["status"] == "ambiguous" and "T1ce: 2 candidates" in rows["PAT-A@20231020"]["reason"]
    assert rows["PAT-B@20230901"]["status"] == "failed" and "no FLAIR series" in rows["PAT-B@20230901"]["reason"]
    # longitudinal: the later study of patient A holds the change from the earlier one, in date order
    assert first["previous_study"] == "" and second["previous_study"] == first["study"]
    for region in ("TC", "WT", "ET"):
        change = float(second[f"{region}_mL"]) - float(first[f"{region}_mL"])
        assert float(second[f"{region}_change_mL"]) == pytest.approx(change, abs=2e-3)
    assert first["t1ce_series"].startswith("T1 post-contrast [") and float(first["registration_min_dice"]) > 0.8
    # every segmented study now holds its SEG, found back by QIDO-RS; the failed ones hold none
    for row in rows.values():
        found = earlier_results(DICOMwebStudy(client, row["study_uid"]))
        assert [r["Modality"] for r in found if r["Modality"] == "SEG"] == (["SEG"] if row["status"] == "ok" else [])
    listing = {s["MainDicomTags"]["StudyInstanceUID"]: s for s in server.rest("/studies?expand")}
    modalities = {
        m
        for s in listing[first["study_uid"]]["Series"]
        for m in [server.rest(f"/series/{s}")["MainDicomTags"]["Modality"]]
    }
    assert "SEG" in modalities
    # a rerun redoes nothing
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/study.json")}
    assert main(argv) == 1
    assert "0 run now, 5 done before" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/study.json")} == stamps
    # a CSV of StudyInstanceUIDs instead of a query (the two studies that fail fast: nothing to segment)
    uids = tmp_path / "uids.csv"
    failing = [r["study_uid"] for r in rows.values() if r["status"] != "ok"]
    uids.write_text("StudyInstanceUID\n" + "\n".join(failing) + "\n")
    argv[argv.index("--query") : argv.index("--query") + 2] = ["--uids", str(uids)]
    argv[argv.index("--output") + 1] = str(tmp_path / "by_uid")
    assert main(argv) == 1
    assert sorted(r["status"] for r in _rows(tmp_path / "by_uid").values()) == ["ambiguous", "failed"]


def test_uid_lists(tmp_path):
    path = tmp_path / "uids.csv"
    path.write_text("StudyInstanceUID,note\n1.2.3,first\n1.2.4,second\n")
    assert _read_uids(path) == ["1.2.3", "1.2.4"]
    path.write_text("1.2.5\n1.2.6\n")
    assert _read_uids(path) == ["1.2.5", "1.2.6"]
    path.write_text("StudyInstanceUID\nnot-a-uid\n")
    with pytest.raises(ClinicalInputError, match="not-a-uid"):
        _read_uids(path)


@pytest.mark.slow
def test_kill_and_rerun_loses_nothing_and_redoes_nothing(studies, bundle, tmp_path):
    out = tmp_path / "cohort"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "monai_iunet.cli", "cohort", "--studies", str(next(iter(studies.values())).parent)]
    command += ["--output", str(out), "--bundle", str(bundle), "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not list(out.glob("*/study.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # in the middle: one study finished, the next one under way
    process.wait(timeout=30)
    finished = {p.parent.name: (p.read_text(), p.stat().st_mtime_ns) for p in out.glob("*/study.json")}
    assert len(finished) == 1
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # the broken and the ambiguous study
    assert f"{len(PLAN) - 1} run now, 1 done before" in rerun.stdout
    after = {p.parent.name: (p.read_text(), p.stat().st_mtime_ns) for p in out.glob("*/study.json")}
    assert set(after) == set(studies) and all(after[k] == v for k, v in finished.items())
    assert not list(out.glob(".*partial")) and not list(out.glob(".*series"))
    statuses = {k: json.loads(v[0])["status"] for k, v in after.items()}
    assert statuses == {"A_1": "ok", "A_2": "ok", "B_1": "ok", "B_2": "failed", "A_3": "ambiguous"}
