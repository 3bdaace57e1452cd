"""A PACS over the DICOMweb standard (QIDO-RS, WADO-RS, STOW-RS), with the maintained ``dicomweb-client``.

Only standard DICOMweb requests are made, so any DICOMweb server works: Orthanc (with its DICOMweb plugin),
dcm4chee, the Google and Azure health-data APIs. The one non-standard request, deleting a series (which dcm4chee
and Google support), is tried only when replacing a result and its refusal is reported, not hidden.

Credentials never go on the command line: :func:`auth_headers` reads them from an environment variable
(:data:`TOKEN_ENV`, a bearer token or ``Header: value`` lines) or from a file of the same form. TLS certificates
are verified by default (``verify`` may name a CA bundle instead).

Example::

    from monai_iunet.clinical.dicomweb import DICOMwebStudy, connect

    client = connect("https://pacs.example.org/dicom-web")  # token from $MONAI_IUNET_DICOMWEB_TOKEN
    study = DICOMwebStudy(client, "1.2.826.0.1.3680043.8.498.1")
    for row in study.series():
        print(row["SeriesInstanceUID"], row["SeriesDescription"], row["NumberOfSeriesRelatedInstances"])
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pydicom
import requests

from monai_iunet.clinical.io import ClinicalInputError

__all__ = [
    "TOKEN_ENV",
    "DICOMwebError",
    "DICOMwebStudy",
    "auth_headers",
    "connect",
    "dataset_from_json",
    "find_studies",
    "parse_query",
]

TOKEN_ENV = "MONAI_IUNET_DICOMWEB_TOKEN"
"""Environment variable with the PACS credentials: a bearer token, or ``Header: value`` lines."""

#: the attributes asked for in series searches (QIDO-RS ``includefield``)
SERIES_FIELDS = ("SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "NumberOfSeriesRelatedInstances")
#: the attributes asked for in study searches
STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber")

_HEADER_LINE = re.compile(r"^([A-Za-z0-9-]+):\s*(.+)$")


class DICOMwebError(ClinicalInputError):
    """The PACS refused a request or cannot be reached; the message names the request and the server's answer."""


def _parse_credentials(text: str, where: str) -> dict[str, str]:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ClinicalInputError(f"{where} is empty; put a bearer token or 'Header: value' lines in it.")
    if len(lines) == 1 and not _HEADER_LINE.match(lines[0]):
        return {"Authorization": f"Bearer {lines[0]}"}
    headers = {}
    for line in lines:
        match = _HEADER_LINE.match(line)
        if match is None:
            raise ClinicalInputError(
                f"{where}: a line is neither a lone bearer token nor 'Header: value' (e.g. 'Authorization: Basic ...')."
            )
        headers[match.group(1)] = match.group(2)
    return headers


def auth_headers(auth_file: str | os.PathLike | None = None, token_env: str = TOKEN_ENV) -> dict[str, str]:
    """The HTTP headers that authenticate to the PACS, from ``auth_file`` if given, else from ``$token_env``.

    Either holds a bearer token (one line) or ``Header: value`` lines (``Authorization: Basic dXNlcjpwYXNz``).
    Neither present: no headers (an open server).

    Raises:
        ClinicalInputError: the file is missing or empty, or a line has another form.
    """
    if auth_file is not None:
        path = Path(auth_file)
        if not path.is_file():
            raise ClinicalInputError(f"--auth-file {path}: no such file.")
        return _parse_credentials(path.read_text(), f"--auth-file {path}")
    value = os.environ.get(token_env, "")
    return _parse_credentials(value, f"${token_env}") if value.strip() else {}


def connect(
    url: str,
    auth_file: str | os.PathLike | None = None,
    verify: bool | str = True,
    timeout: float = 120.0,
    token_env: str = TOKEN_ENV,
):
    """A ``dicomweb_client.DICOMwebClient`` for the DICOMweb root ``url``, authenticated by :func:`auth_headers`.

    Args:
        url: the DICOMweb root (e.g. ``http://localhost:8042/dicom-web`` for Orthanc).
        auth_file: a file with the credentials (else ``$token_env``).
        verify: verify TLS certificates (default), or the path of a CA bundle to verify them with.
        timeout: seconds to wait for each answer.
        token_env: the environment variable with the credentials.
    """
    from dicomweb_client import DICOMwebClient

    if not re.match(r"^https?://", url):
        raise ClinicalInputError(f"--dicomweb {url!r}: give the server's DICOMweb root as an http(s):// URL.")
    if isinstance(verify, str) and not Path(verify).is_file():
        raise ClinicalInputError(f"--ca-bundle {verify}: no such file.")
    session = requests.Session()
    session.headers.update(auth_headers(auth_file, token_env))
    session.verify = verify
    return DICOMwebClient(url.rstrip("/"), session=session, timeout=timeout)


def _value(item: Mapping, keyword: str, default: str = "") -> str:
    """One attribute of a DICOM JSON object (QIDO result) as a string; person names as their alphabetic form."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    entry = item.get(f"{tag:08X}", {})
    values = entry.get("Value") or [default]
    value = values[0]
    return str(value.get("Alphabetic", "")) if isinstance(value, dict) else str(value)


def dataset_from_json(item: Mapping) -> pydicom.Dataset:
    """A pydicom ``Dataset`` from a DICOM JSON object (bulk data left out)."""
    return pydicom.Dataset.from_json(dict(item), bulk_data_uri_handler=lambda *args: b"")


def _request(what: str, call, *args, **kwargs):
    with _pacs_errors(what):
        return call(*args, **kwargs)


@contextlib.contextmanager
def _pacs_errors(what: str) -> Iterator[None]:
    """Turn the PACS's refusals and connection failures during ``what`` into one-sentence :class:`DICOMwebError`."""
    try:
        yield
    except requests.HTTPError as e:
        answer = e.response.status_code if e.response is not None else "no answer"
        hint = " (check the credentials: --auth-file or $" + TOKEN_ENV + ")" if answer in (401, 403) else ""
        raise DICOMwebError(f"the PACS refused {what}: HTTP {answer}{hint}.") from None
    except requests.exceptions.SSLError as e:
        raise DICOMwebError(f"{what}: TLS certificate not verified ({e}); give the CA with --ca-bundle.") from None
    except requests.ConnectionError as e:
        raise DICOMwebError(f"{what}: cannot reach the PACS ({type(e).__name__}); check --dicomweb.") from None


def parse_query(query: Sequence[str]) -> dict[str, str]:
    """QIDO-RS search filters from ``["StudyDescription=*glioma*", "PatientID=P01"]`` (DICOM keywords)."""
    filters = {}
    for item in query:
        key, sep, value = item.partition("=")
        if not sep or pydicom.datadict.tag_for_keyword(key.strip()) is None:
            raise ClinicalInputError(
                f"--query {item!r}: expected KEYWORD=VALUE with a DICOM keyword, e.g. 'StudyDescription=*glioma*'."
            )
        filters[key.strip()] = value.strip()
    return filters


def _server_side(value: str) -> bool:
    """Whether a filter value is matched exactly alike by every server (no wildcard, no space to encode)."""
    return not any(c in value for c in "*? ")


def find_studies(client, filters: Mapping[str, str]) -> list[dict[str, str]]:
    """QIDO-RS: the studies matching ``filters`` (``*`` and ``?`` wildcards), as flat dicts of :data:`STUDY_FIELDS`
    and the filtered attributes.

    Exact values are sent to the server; wildcard values (and values with spaces) are matched here, case-insensitive,
    on the attributes the server returns, since servers differ there (Orthanc 1.10's DICOMweb plugin matches no
    wildcard at all).
    """
    sent = {k: v for k, v in filters.items() if _server_side(v)}
    local = {k: v for k, v in filters.items() if k not in sent}
    fields = list(dict.fromkeys([*STUDY_FIELDS, *filters]))
    found = _request(
        f"the study search {dict(filters)}",
        client.search_for_studies,
        search_filters=sent or None,
        fields=fields,
        get_remaining=True,
    )
    rows = [{k: _value(item, k) for k in fields} for item in found]
    return [
        r
        for r in rows
        if all(fnmatch.fnmatchcase(r[k].lower(), v.lower().replace("[", "[[]")) for k, v in local.items())
    ]


class DICOMwebStudy:
    """One study on a DICOMweb server: its series (QIDO-RS), their instances (WADO-RS), storing into it (STOW-RS).

    Args:
        client: a ``DICOMwebClient`` (:func:`connect`).
        study_uid: the StudyInstanceUID.
    """

    def __init__(self, client, study_uid: str) -> None:
        self.client = client
        self.study_uid = study_uid

    def __repr__(self) -> str:
        return f"study {self.study_uid} at {self.client.base_url}"

    def series(self, **search_filters: str) -> list[dict[str, str]]:
        """QIDO-RS: the series of the study (optionally filtered, e.g. ``Modality="SEG"``), as flat dicts."""
        found = _request(
            f"the series search of {self}",
            self.client.search_for_series,
            study_instance_uid=self.study_uid,
            fields=list(SERIES_FIELDS),
            search_filters=search_filters or None,
            get_remaining=True,
        )
        return [{k: _value(item, k) for k in SERIES_FIELDS} for item in found]

    def first_instance_header(self, series_uid: str) -> pydicom.Dataset:
        """WADO-RS metadata of one instance of a series (no pixels): what series identification reads."""
        instances = _request(
            f"the instance search of series {series_uid}",
            self.client.search_for_instances,
            study_instance_uid=self.study_uid,
            series_instance_uid=series_uid,
            limit=1,
        )
        if not instances:
            raise DICOMwebError(f"series {series_uid} of {self} has no instances.")
        sop_uid = _value(instances[0], "SOPInstanceUID")
        metadata = _request(
            f"the metadata of instance {sop_uid}",
            self.client.retrieve_instance_metadata,
            self.study_uid,
            series_uid,
            sop_uid,
        )
        return dataset_from_json(metadata)

    def fetch_series(
        self, series_uid: str, folder: str | os.PathLike, on_instance: Callable[[], object] | None = None
    ) -> list[str]:
        """WADO-RS: write every instance of one series into ``folder`` (created) as it arrives; returns the files.

        Args:
            series_uid: the SeriesInstanceUID.
            folder: where the instances are written (``00000.dcm``, ``00001.dcm``, ...).
            on_instance: called after each instance is written (a progress bar's ``update``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        with _pacs_errors(f"the retrieval of series {series_uid}"):
            for k, ds in enumerate(self.client.iter_series(self.study_uid, series_uid)):
                path = folder / f"{k:05d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                files.append(str(path))
                if on_instance is not None:
                    on_instance()
        return files

    def store(self, files: Sequence[str | os.PathLike]) -> list[str]:
        """STOW-RS: store DICOM files into this study; returns the stored SOPInstanceUIDs.

        Raises:
            DICOMwebError: the server refused the request or some of the instances (``FailedSOPSequence``).
        """
        datasets = [pydicom.dcmread(str(f)) for f in files]
        wrong = [str(f) for f, ds in zip(files, datasets) if ds.StudyInstanceUID != self.study_uid]
        if wrong:
            raise DICOMwebError(f"{', '.join(wrong)}: not of {self}; refusing to store them there.")
        answer = _request(f"storing {len(datasets)} instance(s) into {self}", self.client.store_instances, datasets)
        failed = list(getattr(answer, "FailedSOPSequence", []))
        if failed:
            reasons = ", ".join(f"{f.ReferencedSOPInstanceUID} (reason {f.get('FailureReason', '?')})" for f in failed)
            raise DICOMwebError(f"the PACS refused to store {reasons} into {self}.")
        return [ds.SOPInstanceUID for ds in datasets]

    def delete_series(self, series_uid: str) -> bool:
        """Try to delete a series (not part of the DICOMweb standard's required services); ``False`` if refused."""
        try:
            self.client.delete_series(self.study_uid, series_uid)
        except (requests.HTTPError, ValueError):
            return False
        return True
