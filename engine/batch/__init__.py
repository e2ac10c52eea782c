"""Cohorts: many cases through one method or pipeline, on Ray (``delineo-engine batch``).

* :mod:`~engine.batch.cases` -- :func:`collect_cases`: files, DICOM folders,
  folders to scan and cohort CSVs become :class:`Case` items with unique,
  filesystem-safe ids.
* :mod:`~engine.batch.case` -- :func:`run_case`, the single-case work that
  ``segment`` does too, and :func:`process_case`, its batch wrapper (per-case
  outputs, failures as rows, resume through :func:`completed_case`).
* :mod:`~engine.batch.runner` -- :func:`run_batch`: Ray actors that keep their
  networks loaded (compiled once with ``CaseConfig.compile``), retries after a
  worker dies, per-case time-out.
* :mod:`~engine.batch.summary` -- ``summary.csv`` and ``manifest.json``.

Ray is optional (``pip install 'delineo[cluster]'``) and imported only when a
batch runs. Usage and outputs: docs/batch.md.
"""

from .case import CaseConfig, CaseResult, case_outputs, completed_case, process_case, run_case
from .cases import Case, collect_cases, safe_case_id
from .runner import INSTALL_HINT, BatchRun, RayMissingError, require_ray, run_batch
from .summary import SUMMARY_COLUMNS, model_card_hash, write_manifest, write_summary

__all__ = [
    "INSTALL_HINT",
    "SUMMARY_COLUMNS",
    "BatchRun",
    "Case",
    "CaseConfig",
    "CaseResult",
    "RayMissingError",
    "case_outputs",
    "collect_cases",
    "completed_case",
    "model_card_hash",
    "process_case",
    "require_ray",
    "run_batch",
    "run_case",
    "safe_case_id",
    "write_manifest",
    "write_summary",
]
