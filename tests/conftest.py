"""Fixtures of the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

#: Qt-free models log a listener that raises instead of stopping the others
#: (engine.core.events); in the tests such a failure must still be seen.
EVENTS_LOGGER = "engine.core.events"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _no_failing_listener(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test in which an event listener raised, unless the test expects it.

    A test that breaks a listener on purpose is marked ``listener_errors``.
    """
    handler = _Collect()
    logger = logging.getLogger(EVENTS_LOGGER)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if request.node.get_closest_marker("listener_errors") is None and handler.records:
        first = handler.records[0]
        detail = f": {first.exc_info[1]!r}" if first.exc_info else ""
        pytest.fail(f"{len(handler.records)} event listener(s) raised; first: "
                    f"{first.getMessage()}{detail}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Orthanc with DICOMweb on 127.0.0.1 (free port, temporary storage, basic auth),
    stopped at the end of the session whatever happens; for engine and viewer tests."""
    from tests.engine.orthanc import start_orthanc

    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()
