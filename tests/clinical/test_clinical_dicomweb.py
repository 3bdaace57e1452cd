"""``segment --dicomweb``: a study on a real PACS (Orthanc over DICOMweb) segmented and its results stored back."""

from __future__ import annotations

import base64
import json
import re

import highdicom as hd
import pydicom
import pytest
from clinical_data import make_bundle_with_weights
from orthanc_server import orthanc  # noqa: F401 - the fixture

from monai_iunet.cli import main
from monai_iunet.clinical import ClinicalInputError
from monai_iunet.clinical.dicomweb import TOKEN_ENV, DICOMwebError, DICOMwebStudy, auth_headers, connect, find_studies
from monai_iunet.clinical.study_sources import ExistingResultError, PacsStudy, earlier_results, segment_study_source
from monai_iunet.data.synthetic_exports import make_scanner_export


def upload(server, folders) -> None:
    """Store every file of ``folders`` into the server (STOW-RS, as a modality or a PACS import would)."""
    client = connect(server.dicomweb_url, auth_file=None, token_env="NO_SUCH_VARIABLE")
    client._session.auth = server.auth  # the test's own credentials; the library takes headers only
    datasets = [pydicom.dcmread(str(f)) for folder in folders for f in sorted(folder.iterdir())]
    client.store_instances(datasets)


@pytest.fixture(scope="module")
def auth_file(tmp_path_factory, orthanc):  # noqa: F811
    path = tmp_path_factory.mktemp("secret") / "pacs.auth"
    token = base64.b64encode(":".join(orthanc.auth).encode()).decode()
    path.write_text(f"# the PACS account of the tests\nAuthorization: Basic {token}\n")
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle_with_weights(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def study(tmp_path_factory, orthanc):  # noqa: F811
    from pathlib import Path

    export = make_scanner_export(tmp_path_factory.mktemp("export"), spatial_size=40, seed=3, formats=("dicom",))
    upload(orthanc, [Path(f) for f in export["dicom"].values()])
    return export


def test_auth_headers_from_env_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "abc.def")
    assert auth_headers() == {"Authorization": "Bearer abc.def"}
    path = tmp_path / "auth"
    path.write_text("Authorization: Basic dXNlcjpwdw==\nX-Tenant: research\n")
    assert auth_headers(path) == {"Authorization": "Basic dXNlcjpwdw==", "X-Tenant": "research"}
    path.write_text("")
    with pytest.raises(ClinicalInputError, match="empty"):
        auth_headers(path)
    monkeypatch.delenv(TOKEN_ENV)
    assert auth_headers() == {}
    assert connect("https://pacs.example.org/dicom-web")._session.verify is True  # TLS verified by default
    with pytest.raises(ClinicalInputError, match="http"):
        connect("pacs.example.org")


def test_wrong_credentials_are_named(orthanc, study, tmp_path):  # noqa: F811
    client = connect(orthanc.dicomweb_url, token_env="NO_SUCH_VARIABLE")
    with pytest.raises(DICOMwebError, match="HTTP 401.*credentials"):
        find_studies(client, {"StudyInstanceUID": study["study"]["StudyInstanceUID"]})


def test_fetch_streams_every_instance_to_disk_and_counts_it(orthanc, study, auth_file, tmp_path):  # noqa: F811
    uid = study["study"]["StudyInstanceUID"]
    client = connect(orthanc.dicomweb_url, auth_file=auth_file)
    pacs = DICOMwebStudy(client, uid)
    row = next(r for r in pacs.series() if int(r["NumberOfSeriesRelatedInstances"]) > 1)
    counted = []
    files = pacs.fetch_series(row["SeriesInstanceUID"], tmp_path / "series", lambda: counted.append(1))
    assert len(files) == len(counted) == int(row["NumberOfSeriesRelatedInstances"])
    expected = sorted(ds.SOPInstanceUID for ds in client.retrieve_series(uid, row["SeriesInstanceUID"]))
    assert sorted(pydicom.dcmread(f).SOPInstanceUID for f in files) == expected
    unauthorised = DICOMwebStudy(connect(orthanc.dicomweb_url, token_env="NO_SUCH_VARIABLE"), uid)
    with pytest.raises(DICOMwebError, match="retrieval of series .*HTTP 401"):
        unauthorised.fetch_series(row["SeriesInstanceUID"], tmp_path / "refused")


def test_segment_and_store_round_trip(orthanc, study, auth_file, bundle, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MONAI_IUNET_PROGRESS", "on")  # bars drawn into the captured stderr
    uid = study["study"]["StudyInstanceUID"]
    client = connect(orthanc.dicomweb_url, auth_file=auth_file)
    assert [s["StudyInstanceUID"] for s in find_studies(client, {"StudyDescription": "*HEAD*"})] == [uid]
    argv = ["segment", "--dicomweb", orthanc.dicomweb_url, "--study-uid", uid, "--auth-file", str(auth_file)]
    argv += ["--bundle", str(bundle), "--device", "cpu", "--store"]
    assert main([*argv, "--output", str(tmp_path / "first")]) == 0
    report = json.loads((tmp_path / "first" / "report.json").read_text())
    fetched = re.findall(r"fetch: .*?(\d+)/(\d+) ", capsys.readouterr().err)  # a bar over the four series' instances
    assert fetched and len({total for _, total in fetched}) == 1 and int(fetched[-1][1]) > 4  # instances, not series
    assert 0 < int(fetched[-1][0]) <= int(fetched[-1][1])  # (the bar is cleared when done: its last redraw shows)
    assert report["study"]["series"]["t1ce"]["description"] == "T1 post-contrast"
    assert report["pacs"]["version"] == 1
    # the SEG is in the study, found back by QIDO-RS, and it is the one written locally
    pacs = DICOMwebStudy(client, uid)
    found = {r["Modality"]: r for r in earlier_results(pacs)}
    assert (found["SEG"]["version"], found["SEG"]["SeriesNumber"]) == (1, "300")
    local = hd.seg.segread(str(tmp_path / "first" / "segmentation.dcm"))
    stored = client.retrieve_series(uid, found["SEG"]["SeriesInstanceUID"])
    assert [ds.SOPInstanceUID for ds in stored] == [local.SOPInstanceUID]
    assert local.ReferencedSeriesSequence[0].SeriesInstanceUID == report["study"]["series"]["t1ce"]["uid"]
    # everything written as DICOM (the SEG, and the volumes SR where the pipeline writes one) is stored, versioned
    written = {ds.Modality: ds for ds in map(pydicom.dcmread, sorted((tmp_path / "first").glob("*.dcm")))}
    assert set(report["pacs"]["instances"]) == {ds.SOPInstanceUID for ds in written.values()}
    assert set(found) == set(written) and written["SEG"].SeriesDescription.startswith("iUNet tumour segmentation v1")
    if "SR" in written:
        assert (found["SR"]["version"], found["SR"]["SeriesNumber"]) == (1, "301")
    # Orthanc's own listing of the study shows them (REST, to inspect the server the way its users see it)
    series = [orthanc.rest(f"/series/{s}") for s in _study_series(orthanc, uid)]
    assert set(written) <= {s["MainDicomTags"]["Modality"] for s in series}
    # a second run says so before computing anything, and --overwrite stores version 2
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "second")]) == 2
    err = capsys.readouterr().err
    assert "already holds results of monai-iunet" in err and "--overwrite" in err
    assert not (tmp_path / "second").exists()
    assert main([*argv, "--output", str(tmp_path / "second"), "--overwrite"]) == 0
    versions = sorted(
        (r["version"], r["SeriesNumber"], r["SeriesDescription"])
        for r in earlier_results(pacs)
        if r["Modality"] == "SEG"
    )
    assert [v[:2] for v in versions] == [(1, "300"), (2, "310")]
    assert versions[1][2].startswith("iUNet tumour segmentation v2")


def _study_series(server, uid: str) -> list[str]:
    studies = [s for s in server.rest("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == uid]
    return studies[0]["Series"]


def test_store_needs_a_pacs_and_ambiguity_fetches_nothing(orthanc, study, auth_file, bundle, tmp_path):  # noqa: F811
    client = connect(orthanc.dicomweb_url, auth_file=auth_file)
    source = PacsStudy(DICOMwebStudy(client, study["study"]["StudyInstanceUID"]))
    with pytest.raises(ExistingResultError):
        segment_study_source(source, tmp_path / "out", store=True, bundle=bundle)
    with pytest.raises(ClinicalInputError, match="no such series"):
        segment_study_source(source, tmp_path / "out", overrides={"t1ce": "1.2.3.4"}, bundle=bundle)
    assert not (tmp_path / "out").exists()
