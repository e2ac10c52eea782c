"""PACS benchmark: retrieving a 256 x 256 x 180 series from a loopback Orthanc vs from disk.

Not a test (no assertions on time). Run from the repository root::

    .venv/bin/python benchmarks/bench_pacs.py

Starts Debian's Orthanc with its DICOMweb plugin on 127.0.0.1 (free port,
temporary storage, as the tests do), stores one synthetic int16 MR series of
180 slices of 256 x 256, then times, median of repeats: reading the same files
from disk with Delineo's DICOM reader (the reference), and
:meth:`engine.pacs.PacsClient.retrieve_series_volume` (WADO-RS into a folder,
then the same reader). Goal (from the interoperability issue): retrieval <= 2x
the disk read.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, machine, median, timeit
from engine.io.dicom import read_dicom
from engine.pacs import PacsAuth, PacsClient
from tests.engine.dicom_factory import write_series
from tests.engine.orthanc import PASSWORD, USER, start_orthanc


def main() -> None:
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="delineo-bench-pacs-") as tmp:
        root = Path(tmp)
        data = np.random.default_rng(0).integers(0, 2000, (256, 256, 180)).astype(np.int16)
        paths = write_series(root / "series", data, np.diag([0.9, 0.9, 1.0, 1.0]),
                             modality="MR", subfolders=False)
        server = start_orthanc(root / "orthanc")
        try:
            client = PacsClient(server.url, auth=PacsAuth(USER, PASSWORD))
            client.store(paths)
            uid = client.find_series(modality="MR")[0].series_uid
            disk = timeit(lambda: read_dicom(root / "series"), repeats=3)
            runs = iter(range(100))

            def retrieve() -> None:
                client.retrieve_series_volume(uid, root / f"got{next(runs)}")

            pacs = timeit(retrieve, repeats=3)
        finally:
            server.stop()
    emit("disk read (180 x 256 x 256), median", median(disk), "s")
    emit("PACS retrieve + read, median", median(pacs), "s", goal="<= 2x the disk read",
         ratio=median(pacs) / median(disk), reference="disk read")


if __name__ == "__main__":
    main()
