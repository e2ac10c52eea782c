"""A DICOMweb client for a PACS: find studies and series, retrieve a series, store files.

Built on ``dicomweb-client`` (QIDO-RS, WADO-RS, STOW-RS) over a ``requests``
session with retries: connection failures and 502/503/504 answers are tried
again with a growing pause (``retries`` times); 4xx answers are not. Every
failure becomes one :class:`PacsError` line that names the server *without*
its credentials: refused connection, time-out, 401 (wrong or missing
credentials), 403, 404 (unknown study or series), a server that does not
speak DICOMweb, a malformed answer.

Credentials are basic auth (user and password) or a bearer token
(:class:`PacsAuth`); they are never part of a message, a log line or a repr.

Examples
--------
>>> PacsAuth(user="reader", password="s3cret")
PacsAuth(user='reader', password=***, token=None)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..core.errors import DelineoError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.volume import Volume
from ..io.atomic import atomic_path

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
]

log = logging.getLogger(__name__)


class PacsError(DelineoError):
    """A PACS request failed (one line, never with credentials)."""


class PacsConnectionError(PacsError):
    """The server could not be reached (refused, unknown host, time-out)."""


class PacsAuthError(PacsError):
    """401 or 403: the credentials are wrong, missing or not allowed."""


class PacsNotFoundError(PacsError):
    """404: no such study, series or DICOMweb endpoint."""


class PacsResponseError(PacsError):
    """The server answered something that is not valid DICOMweb."""


@dataclass(frozen=True)
class PacsAuth:
    """Basic-auth credentials or a bearer token (the secret is never shown)."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"PacsAuth(user={self.user!r}, password={'***' if self.password else None}, "
                f"token={'***' if self.token else None})")


@dataclass(frozen=True)
class PacsServer:
    """A server of the viewer's list: a name, its DICOMweb URL and how to log in."""

    name: str
    url: str
    auth_kind: str = "none"  # "none", "basic" or "token"
    user: str = ""


@dataclass(frozen=True)
class SeriesRow:
    """One series found by :meth:`PacsClient.find_series`."""

    patient_name: str
    patient_id: str
    study_date: str
    modality: str
    description: str
    instances: int | None
    study_uid: str
    series_uid: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StoreResult:
    """What STOW-RS accepted and refused."""

    accepted: list[str]
    failed: list[tuple[str, str]]  # (SOP instance UID, reason)


def _safe_url(url: str) -> str:
    """*url* without user information (``user:password@``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value) if value is not None else ""


class PacsClient:
    """A DICOMweb server (see the module docstring).

    Parameters
    ----------
    url : str
        The DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``.
    auth : PacsAuth, optional
    timeout : float
        Seconds to wait for the server, per request.
    retries : int
        Further tries after a connection failure or a 502/503/504 answer.
    """

    def __init__(self, url: str, *, auth: PacsAuth | None = None, timeout: float = 20.0,
                 retries: int = 2) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError(f"not an http(s) URL: {_safe_url(url)!r}")
        self.url = url.rstrip("/")
        self.where = _safe_url(self.url)
        session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=0.3, status_forcelist=(502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if auth is not None and auth.token:
            session.headers["Authorization"] = f"Bearer {auth.token}"
        elif auth is not None and auth.user:
            session.auth = (auth.user, auth.password or "")
        self._client = DICOMwebClient(self.url, session=session, timeout=timeout)
        # One retry policy, the session's (above): the library's own would add up to five
        # more attempts with exponential pauses on top of it.
        self._client.set_http_retry_params(retry=False)

    # -- errors ------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 401:
                raise PacsAuthError(f"{self.where}: {what}: 401 unauthorised (wrong or missing "
                                    "credentials: --user and DELINEO_PACS_PASSWORD, or a "
                                    "token)") from None
            if status == 403:
                raise PacsAuthError(f"{self.where}: {what}: 403 forbidden (these credentials "
                                    "may not do this)") from None
            if status == 404:
                raise PacsNotFoundError(f"{self.where}: {what}: 404 not found (no such study "
                                        "or series, or no DICOMweb at this URL)") from None
            raise PacsError(f"{self.where}: {what}: HTTP {status}") from None
        except requests.exceptions.Timeout:
            raise PacsConnectionError(f"{self.where}: {what}: no answer in time "
                                      "(--timeout)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.RetryError) as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else \
                "cannot connect"
            raise PacsConnectionError(f"{self.where}: {what}: {reason}") from None
        except PacsError:
            raise
        except (ValueError, KeyError, TypeError, json.JSONDecodeError,
                pydicom.errors.InvalidDicomError) as exc:
            text = " ".join(str(exc).split())[:120]
            raise PacsResponseError(f"{self.where}: {what}: malformed answer "
                                    f"({type(exc).__name__}: {text})") from None

    # -- QIDO ----------------------------------------------------------------------------------
    def find_series(self, *, patient_name: str | None = None, patient_id: str | None = None,
                    study_date: str | None = None, modality: str | None = None,
                    study_uid: str | None = None, series_uid: str | None = None,
                    description: str | None = None, limit: int | None = None
                    ) -> list[SeriesRow]:
        """Series matching the filters (``*`` wildcards in names; dates ``YYYYMMDD[-YYYYMMDD]``)."""
        filters: dict[str, Any] = {}
        for key, value in (("PatientName", patient_name), ("PatientID", patient_id),
                           ("StudyDate", study_date), ("Modality", modality),
                           ("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid),
                           ("SeriesDescription", description)):
            if value:
                filters[key] = value
        fields = ["PatientName", "PatientID", "StudyDate", "Modality", "SeriesDescription",
                  "NumberOfSeriesRelatedInstances", "StudyInstanceUID", "SeriesInstanceUID"]
        found = self._call("find series", lambda: self._client.search_for_series(
            search_filters=filters, fields=fields, limit=limit))
        if not isinstance(found, list):
            raise PacsResponseError(f"{self.where}: find series: malformed answer (not a list)")
        rows = []
        for item in found:
            ds = self._call("find series", lambda item=item: pydicom.Dataset.from_json(item))
            count = ds.get("NumberOfSeriesRelatedInstances")
            rows.append(SeriesRow(
                patient_name=_text(ds, "PatientName"), patient_id=_text(ds, "PatientID"),
                study_date=_text(ds, "StudyDate"), modality=_text(ds, "Modality"),
                description=_text(ds, "SeriesDescription"),
                instances=int(count) if count not in (None, "") else None,
                study_uid=_text(ds, "StudyInstanceUID"),
                series_uid=_text(ds, "SeriesInstanceUID")))
        return rows

    def study_of(self, series_uid: str) -> SeriesRow:
        """The series *series_uid* (its study UID, size...); 404-like error if unknown."""
        rows = self.find_series(series_uid=series_uid)
        if not rows:
            raise PacsNotFoundError(f"{self.where}: no series {series_uid}")
        return rows[0]

    # -- WADO ----------------------------------------------------------------------------------
    def retrieve_series(self, series_uid: str, folder: str | Path, *,
                        study_uid: str | None = None,
                        progress: Callable[[float, str], None] | None = None,
                        cancel: CancelToken | None = None) -> list[Path]:
        """Write every instance of a series into *folder* (``<SOPInstanceUID>.dcm``, atomic)."""
        row = self.study_of(series_uid)
        study = study_uid or row.study_uid
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        total = row.instances or 0
        written: list[Path] = []
        report(progress, 0.0, f"retrieving {total or '?'} instances")
        iterator = self._call("retrieve", lambda: self._client.iter_series(study, series_uid))

        def next_item() -> pydicom.Dataset | None:
            return next(iterator, None)

        while True:
            check_cancel(cancel)
            ds = self._call("retrieve", next_item)
            if ds is None:
                break
            uid = str(ds.get("SOPInstanceUID", "")) or f"instance{len(written) + 1}"
            path = folder / f"{uid}.dcm"
            with atomic_path(path) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            written.append(path)
            report(progress, len(written) / total if total else 0.5,
                   f"retrieved {len(written)}/{total or '?'}")
        if not written:
            raise PacsNotFoundError(f"{self.where}: series {series_uid} has no instances")
        report(progress, 1.0, f"retrieved {len(written)} instances")
        return written

    def retrieve_series_volume(self, series_uid: str, folder: str | Path, **kwargs: Any
                               ) -> Volume:
        """:meth:`retrieve_series` into *folder*, then Delineo's DICOM reader on it."""
        from ..io.dicom import read_dicom

        self.retrieve_series(series_uid, folder, **kwargs)
        return read_dicom(folder, series=series_uid)

    # -- STOW ----------------------------------------------------------------------------------
    def store(self, items: Iterable[str | Path | pydicom.Dataset], *,
              batch: int = 16) -> StoreResult:
        """Send DICOM files or datasets (images, SEG, SR) with STOW-RS."""
        datasets: list[pydicom.Dataset] = []
        for item in items:
            if isinstance(item, pydicom.Dataset):
                datasets.append(item)
                continue
            try:
                datasets.append(pydicom.dcmread(item))
            except (pydicom.errors.InvalidDicomError, OSError) as exc:
                raise PacsError(f"{item}: not a DICOM file to store ({exc})") from None
        accepted: list[str] = []
        failed: list[tuple[str, str]] = []
        for start in range(0, len(datasets), batch):
            chunk = datasets[start:start + batch]
            # STOW-RS stores per study: group the chunk by study.
            by_study: dict[str, list[pydicom.Dataset]] = {}
            for ds in chunk:
                by_study.setdefault(str(ds.get("StudyInstanceUID", "")), []).append(ds)
            for study, group in by_study.items():
                answer = self._call("store", lambda g=group, s=study: self._client.store_instances(
                    g, study_instance_uid=s or None))
                for ref in getattr(answer, "ReferencedSOPSequence", []):
                    accepted.append(str(ref.ReferencedSOPInstanceUID))
                for ref in getattr(answer, "FailedSOPSequence", []):
                    failed.append((str(ref.ReferencedSOPInstanceUID),
                                   f"failure reason {ref.get('FailureReason', '?')}"))
        return StoreResult(accepted, failed)


def parse_date_range(text: str) -> str:
    """Check a QIDO date filter: ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``."""
    import re

    if not re.fullmatch(r"\d{8}(-\d{8})?|\d{8}-|-\d{8}", text):
        raise ValueError("dates are YYYYMMDD or YYYYMMDD-YYYYMMDD")
    return text


def wait_until_up(client: PacsClient, seconds: float = 20.0) -> None:
    """Poll until the server answers a search (used by tests and benchmarks)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.find_series(limit=1)
            return
        except PacsConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

