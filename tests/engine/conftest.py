"""Fixtures shared by the engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Test volumes are small: one thread avoids OpenMP spin-waits on a shared 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A real Orthanc with DICOMweb on 127.0.0.1 (free port, temporary storage, basic auth),
    stopped at the end of the session whatever happens."""
    from tests.engine.orthanc import start_orthanc

    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()
