"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin, on free loopback ports, storage in tmp.

Test modules import the :func:`orthanc` fixture. Install with ``apt-get install orthanc orthanc-dicomweb``
(``scripts/install_tests.sh``). Where the ``Orthanc``
binary or the plugin is missing, :func:`orthanc_missing` says why, and the tests that need the server skip with it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

__all__ = ["ORTHANC_USER", "OrthancServer", "free_port", "orthanc", "orthanc_missing", "start_orthanc"]

#: the HTTP user of the test server (Orthanc's basic authentication); the library gets it as a header from a file
ORTHANC_USER = ("pacs", "test-only-password")

#: where Debian's orthanc-dicomweb package puts the plugin (``dpkg -L orthanc-dicomweb``)
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> str | None:
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.access(p, os.X_OK)), None)


def _plugin() -> str | None:
    found = [p for p in PLUGIN_CANDIDATES if Path(p).is_file()]
    found += sorted(str(p) for p in Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")) if not found else []
    return found[0] if found else None


def orthanc_missing() -> str | None:
    """Why a test Orthanc cannot start here (``None`` when it can)."""
    if _binary() is None:
        return "Orthanc is not installed (scripts/install_tests.sh: apt-get install orthanc orthanc-dicomweb)"
    if _plugin() is None:
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


@dataclass
class OrthancServer:
    """A running test Orthanc: ``url`` (HTTP root), ``dicomweb_url`` (its DICOMweb root), ``auth`` for REST."""

    process: subprocess.Popen
    http_port: int
    dicom_port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return ORTHANC_USER

    def rest(self, path: str):
        """GET an Orthanc REST resource (the tests inspect the server with it; the library never does)."""
        response = requests.get(f"{self.url}{path}", auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_orthanc(root: Path, http_port: int, dicom_port: int, timeout: float = START_TIMEOUT_S) -> OrthancServer:
    """Start Orthanc with its storage and index under ``root`` and wait until it answers (at most ``timeout`` s).

    Raises:
        RuntimeError: it exited or did not answer in time; the message holds the end of its log.
    """
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "monai-iunet-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "IUNETTEST",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER[0]: ORTHANC_USER[1]},
        "HttpsCACertificates": "",
        "Plugins": [_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{http_port}", "Ssl": False},
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 8,
        "StorageCompression": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=4))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - the server keeps writing to it
    process = subprocess.Popen([_binary(), str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = OrthancServer(process, http_port, dicom_port, root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{server.url}/system", auth=ORTHANC_USER, timeout=2).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    server.stop()
    tail = (root / "orthanc.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Orthanc did not answer on port {http_port} within {timeout:.0f} s; its log ends:\n{tail}")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A running Orthanc with the DICOMweb plugin, empty storage, on free loopback ports; stopped after the module.

    Use it by importing it into the test module: ``from orthanc_server import orthanc``.
    """
    why = orthanc_missing()
    if why is not None:
        pytest.skip(f"needs a real PACS: {why}")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), http_port=free_port(), dicom_port=free_port())
    yield server
    server.stop()
