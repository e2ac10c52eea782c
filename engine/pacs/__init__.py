"""The PACS: a DICOMweb client (QIDO-RS find, WADO-RS retrieve, STOW-RS store).

See :mod:`engine.pacs.client` and docs/pacs.md.
"""

from .client import (
    PacsAuth,
    PacsAuthError,
    PacsClient,
    PacsConnectionError,
    PacsError,
    PacsNotFoundError,
    PacsResponseError,
    PacsServer,
    SeriesRow,
    StoreResult,
    parse_date_range,
    wait_until_up,
)

__all__ = [
    "PacsAuth",
    "PacsAuthError",
    "PacsClient",
    "PacsConnectionError",
    "PacsError",
    "PacsNotFoundError",
    "PacsResponseError",
    "PacsServer",
    "SeriesRow",
    "StoreResult",
    "parse_date_range",
    "wait_until_up",
]
