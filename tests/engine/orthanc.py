"""A real Orthanc PACS (Debian's ``orthanc`` with its DICOMweb plugin) for the tests.

:func:`start_orthanc` writes a configuration into a temporary folder (storage,
index, a free port on 127.0.0.1, remote access off, basic auth with one user)
and starts the server; :meth:`Orthanc.stop` ends it, whatever state it is in.
The session fixture ``orthanc`` in tests/engine/conftest.py stops it at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BINARY = "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")
USER, PASSWORD = "reader", "s3cret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dicomweb_plugin() -> str:
    for folder in PLUGIN_DIRS:
        for name in ("libOrthancDicomWeb.so", "libOrthancDicomWeb.so.mainline"):
            if (Path(folder) / name).exists():
                return str(Path(folder) / name)
    raise RuntimeError("Orthanc's DICOMweb plugin is missing: run packaging/setup.sh "
                       "(it installs the Debian packages orthanc and orthanc-dicomweb)")


@dataclass
class Orthanc:
    process: subprocess.Popen
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_orthanc(folder: Path) -> Orthanc:
    if not Path(BINARY).exists():
        raise RuntimeError(f"{BINARY} is missing: run packaging/setup.sh (it installs the "
                           "Debian packages orthanc and orthanc-dicomweb)")
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {
        "Name": "DelineoTests", "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"), "HttpPort": port, "DicomServerEnabled": False,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "Plugins": [_dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpServerThreads": 8,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([BINARY, str(folder / "orthanc.json")], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = Orthanc(process, port, folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("Orthanc exited at start: "
                               + (folder / "orthanc.log").read_text()[-500:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:  # 401: it is up
            return server
        except OSError:
            time.sleep(0.2)
            continue
        return server
    server.stop()
    raise RuntimeError("Orthanc did not answer within 30 s")
