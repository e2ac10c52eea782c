"""The outputs that describe a whole batch: ``summary.csv`` and ``manifest.json``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_text
from .case import TISSUES, CaseConfig, CaseResult
from .runner import BatchRun, _extracts_brain, _network_names

__all__ = ["SUMMARY_COLUMNS", "model_card_hash", "summary_rows", "write_manifest",
           "write_summary"]

#: Columns of ``summary.csv``, in order (volumes in mL, runtime in seconds).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "case", "status", "error",
    *(f"{key}_ml" for key in TISSUES.values()),
    "lesion_count", "lesion_ml",
    *(f"dice_{key}" for key in TISSUES.values()), "dice_mean",
    "runtime_s", "worker", "attempts", "verdict", "warnings", "labels",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def summary_rows(results: Sequence[CaseResult], out: str | Path) -> list[dict[str, str]]:
    """One row per case (strings, as written), columns :data:`SUMMARY_COLUMNS`."""
    out = Path(out)
    rows = []
    for r in results:
        ok = r.status != "failed"
        row: dict[str, Any] = {"case": r.case, "status": r.status, "error": r.error}
        for key in TISSUES.values():
            row[f"{key}_ml"] = r.volumes_ml.get(key) if ok else None
            row[f"dice_{key}"] = r.dice.get(key) if ok else None
        row["dice_mean"] = r.dice.get("mean") if ok else None
        row["lesion_count"] = r.lesion_count if ok else None
        row["lesion_ml"] = r.lesion_ml if ok else None
        row["runtime_s"] = round(r.total_seconds, 3) if r.total_seconds else None
        row["worker"], row["attempts"] = r.worker, r.attempts
        row["verdict"] = r.verdict if ok else ""
        row["warnings"] = "; ".join(r.warnings) if ok else ""
        if ok and r.output:
            try:
                row["labels"] = Path(r.output).relative_to(out).as_posix()
            except ValueError:
                row["labels"] = r.output
        rows.append({c: _cell(row.get(c)) for c in SUMMARY_COLUMNS})
    return rows


def write_summary(results: Sequence[CaseResult], out: str | Path) -> Path:
    """Write ``out/summary.csv`` atomically (see :data:`SUMMARY_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(results, out))
    path = Path(out) / "summary.csv"
    atomic_write_text(path, buffer.getvalue())
    return path


def model_card_hash(config: CaseConfig) -> tuple[str | None, dict[str, str]]:
    """sha256 over the model cards of the networks *config* uses, and each card's own.

    ``(None, {})`` when no network is used (classical methods).
    """
    from ..models.weights import models_dir

    cards: dict[str, str] = {}
    for name in _network_names(config):
        path = Path(models_dir()) / f"{name}.json"
        if path.is_file():
            cards[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    if not cards:
        return None, {}
    joined = "\n".join(f"{name} {digest}" for name, digest in sorted(cards.items()))
    return hashlib.sha256(joined.encode()).hexdigest(), cards


def _brain_extractor(config: CaseConfig) -> dict[str, str] | None:
    """Name, version and licence of the brain-extraction network used, if any (it ships
    in its own package, without a Delineo model card)."""
    from ..methods.brain_extraction import BRAIN_EXTRACTOR

    if not _extracts_brain(config):
        return None
    return {k: BRAIN_EXTRACTOR[k] for k in ("name", "version", "licence")}


def write_manifest(run: BatchRun, config: CaseConfig, out: str | Path, *,
                   inputs: Sequence[str] = ()) -> Path:
    """Write ``out/manifest.json`` atomically: what ran, where, and when."""
    from .. import __version__
    from .case import config_key

    card_hash, cards = model_card_hash(config)
    counts = run.counts()
    document = {
        "format": "delineo-batch-manifest",
        "version": 1,
        "delineo_version": __version__,
        "method": config.method,
        "pipeline": None if config.method else config.what,
        "settings": config_key(config),
        "device": config.device,
        "compile": config.compile,
        "model_card_sha256": card_hash,
        "model_cards": cards,
        "brain_extractor": _brain_extractor(config),
        "engine": run.engine,
        "address": run.address,
        "cluster": {"nodes": run.cluster_nodes, "cpus": run.cluster_cpus,
                    "gpus": run.cluster_gpus, "workers": run.workers,
                    "threads_per_worker": run.threads},
        "inputs": [str(i) for i in inputs],
        "cases": len(run.results),
        "done": counts.get("done", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "started": run.started,
        "ended": run.ended,
    }
    path = Path(out) / "manifest.json"
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path
