"""One case, start to end: the work ``segment`` does, and every worker of ``batch`` does.

:func:`run_case` reads an image (NIfTI, DICOM file or folder), checks that
the method or pipeline was made for it (:mod:`engine.methods.applicability`),
segments it, judges the result (:mod:`engine.evaluation.plausibility`),
writes the label file with its result record (atomically, through
:func:`engine.io.save`) and, when asked, measures the lesions (label 4) and
writes their findings, and scores the result against a ground truth.

:func:`process_case` is the batch wrapper: per-case outputs under one folder,
any error turned into a failed :class:`CaseResult` with its one-line message,
and a small JSON record written last, so that a case whose record, label file
(and findings) load back is done (:func:`completed_case`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DelineoError
from ..core.jobs import CancelToken
from ..core.volume import LabelMap, Volume
from ..io import load, load_labels, save
from ..io.atomic import atomic_write_text
from ..methods.pipeline import DEFAULT_PIPELINE
from .cases import Case

__all__ = [
    "TISSUES",
    "CaseConfig",
    "CaseOutputs",
    "CaseResult",
    "case_outputs",
    "completed_case",
    "process_case",
    "run_case",
]

#: Label value -> short tissue key of the summary columns.
TISSUES: dict[int, str] = {1: "csf", 2: "gm", 3: "wm"}

#: Format tag of the per-case record (``records/CASE.json``).
RECORD_FORMAT = "delineo-batch-case"

Progress = Callable[[float, str], None] | None


@dataclass
class CaseResult:
    """What happened to one case.

    ``status`` is ``"done"``, ``"failed"`` (``error`` says why, in one line)
    or ``"skipped"`` (its outputs already existed and loaded back).
    Volumes are in mL; ``dice`` is per tissue key of :data:`TISSUES` plus
    ``mean`` when a ground truth was given; ``seconds`` is the time of the
    segmentation itself, ``total_seconds`` that of the whole case;
    ``compiled`` names the networks its worker ran ``torch.compile``-d.
    """

    case: str = ""
    status: str = "done"
    error: str = ""
    image: str = ""
    output: str = ""
    method: str | None = None
    pipeline: str | None = None
    description: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    device: str = ""
    seconds: float = 0.0
    total_seconds: float = 0.0
    labels: list[dict[str, Any]] = field(default_factory=list)
    volumes_ml: dict[str, float] = field(default_factory=dict)
    lesion_count: int = 0
    lesion_ml: float = 0.0
    findings: list[str] = field(default_factory=list)
    dice: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    plausibility: dict[str, Any] = field(default_factory=dict)
    uncertainty: str | None = None
    worker: str = ""
    attempts: int = 1
    compiled: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return str(self.plausibility.get("verdict", "")) if self.plausibility else ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class CaseConfig:
    """How every case of a batch is run (sent once to each worker).

    ``method`` or ``pipeline`` (default :data:`DEFAULT_PIPELINE`) with
    already-checked ``params`` (a method's parameter object) or pipeline
    ``overrides``; ``allow_outside_use`` runs images outside the declared use
    with warnings (``segment --force``); ``detect`` measures lesions and
    writes findings; ``compile`` has each worker run Delineo's networks through
    ``torch.compile`` (compiled once, when the worker starts; the same results up
    to the rounding of fused arithmetic, so not part of :func:`config_key`).
    """

    method: str | None = None
    pipeline: str | None = None
    params: Any = None
    overrides: Mapping[int, Mapping[str, Any]] | None = None
    device: str = "auto"
    allow_outside_use: bool = False
    detect: bool = False
    compile: bool = False

    @property
    def what(self) -> str:
        return self.method or self.pipeline or DEFAULT_PIPELINE


@dataclass(frozen=True)
class CaseOutputs:
    """Where one case's files go under the batch output folder."""

    labels: Path
    record: Path
    findings_folder: Path
    findings_stem: str

    @property
    def findings(self) -> list[Path]:
        return [self.findings_folder / f"{self.findings_stem}.{ext}" for ext in ("json", "csv")]


def case_outputs(out: str | Path, case_id: str) -> CaseOutputs:
    """``labels/CASE.nii.gz``, ``records/CASE.json`` and ``findings/CASE.{json,csv}``."""
    out = Path(out)
    return CaseOutputs(out / "labels" / f"{case_id}.nii.gz", out / "records" / f"{case_id}.json",
                       out / "findings", case_id)


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dice(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from ..core.metrics import confusion

    counts = confusion(pred, truth, list(TISSUES))
    scores = {key: float(counts[value].dice) for value, key in TISSUES.items()}
    finite = [v for v in scores.values() if np.isfinite(v)]
    scores["mean"] = float(np.mean(finite)) if finite else float("nan")
    return {k: round(v, 4) for k, v in scores.items()}


def _volumes(labels: LabelMap) -> tuple[list[dict[str, Any]], dict[str, float]]:
    ml = labels.voxel_volume_ml
    counts = labels.counts()
    rows = [{"value": v, "name": labels.labels.name(v), "voxels": n,
             "volume_ml": round(n * ml, 3)}
            for v, n in sorted(counts.items()) if v != 0]
    volumes = {key: round(counts.get(value, 0) * ml, 3) for value, key in TISSUES.items()}
    return rows, volumes


def _lesions(labels: LabelMap) -> tuple[np.ndarray, int, float]:
    from ..lesions import LESION_VALUE, lesion_instances

    instances = lesion_instances(labels)
    count = int(instances.max(initial=0))
    volume = float(np.count_nonzero(np.asarray(labels.array) == LESION_VALUE)
                   * labels.voxel_volume_ml)
    return instances, count, round(volume, 3)


def run_case(
    image: str | Path,
    output: str | Path,
    *,
    method: str | None = None,
    pipeline: str | None = None,
    params: Any = None,
    overrides: Mapping[int, Mapping[str, Any]] | None = None,
    device: str = "auto",
    mask: str | Path | None = None,
    series: str | int | None = None,
    allow_outside_use: bool = False,
    uncertainty: str | Path | None = None,
    detect: bool = False,
    findings_folder: str | Path | None = None,
    findings_stem: str = "findings",
    ground_truth: str | Path | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
    on_warning: Callable[[str], None] | None = None,
    override_hint: str = "--force",
) -> CaseResult:
    """Segment one image and write its label file (what ``delineo-engine segment`` does).

    Parameters
    ----------
    image : str or Path
        NIfTI file, DICOM file or DICOM folder.
    output : str or Path
        The label file to write (``.nii``/``.nii.gz``), atomically.
    method, pipeline : str, optional
        A registered method, or a pipeline (default :data:`DEFAULT_PIPELINE`).
    params, overrides
        The method's parameter object, or the pipeline's
        ``{step index: {name: value}}`` changes, already checked.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    mask : str or Path, optional
        Brain mask on the image's grid (non-zero = brain).
    series : str or int, optional
        DICOM series of a folder (UID or index).
    allow_outside_use : bool
        Run an image outside the declared use; the reasons become warnings.
        Without it such an image raises
        :class:`~engine.methods.applicability.NotApplicableError` before any
        computation.
    uncertainty : str or Path, optional
        Also write the voxel uncertainty map (needs class probabilities).
    detect : bool
        Measure the lesions (label 4) of the result and write their findings
        (``findings_folder/findings_stem.{json,csv}``; default: next to
        *output*): with a pipeline that ends in the lesions step (the
        default ``head``) they are the lesion networks' findings with their
        confidences; otherwise the label-4 voxels of the result.
    ground_truth : str or Path, optional
        Label map on the image's grid: Dice per tissue.
    progress, cancel
        ``progress(fraction, message)`` and a cancel token.
    on_warning : callable, optional
        Called with each applicability warning as it is found.
    override_hint : str
        The option named in the refusal ("use --force to run anyway").

    Returns
    -------
    CaseResult
        With ``status == "done"``; every problem raises a typed
        :class:`~engine.core.errors.DelineoError` instead.
    """
    from ..evaluation.plausibility import assess
    from ..methods import get_method
    from ..methods.applicability import check_applicability, refusal
    from ..methods.pipeline import get_pipeline, run_pipeline

    start = time.perf_counter()
    if method:
        spec: Any = get_method(method)
        params = params if params is not None else spec.default_params()
    else:
        spec = get_pipeline(pipeline or DEFAULT_PIPELINE)
    volume: Volume = load(image, series=series)
    brain = load_labels(mask, reference=volume).array > 0 if mask else None
    truth = load_labels(ground_truth, reference=volume) if ground_truth else None
    reasons = check_applicability(volume, spec)
    if reasons and not allow_outside_use:
        raise refusal(reasons, override_hint)
    for reason in reasons:
        if on_warning is not None:
            on_warning(reason)
    result = CaseResult(image=str(image), method=method, device=str(device),
                        warnings=list(reasons))
    if method:
        t0 = time.perf_counter()
        done = spec.run(volume, params, device=str(device), mask=brain, progress=progress)
        result.seconds = time.perf_counter() - t0
        array, table, probabilities = done.labels.array, done.labels.labels, done.probabilities
        result.description = spec.name
    else:
        done = run_pipeline(volume, spec, device=str(device), mask=brain, overrides=overrides,
                            progress=progress, cancel=cancel)
        result.seconds = done.seconds
        array, table = done.labels.array, done.labels.labels
        probabilities = done.segment_probabilities
        result.pipeline, result.description = done.pipeline, done.description
        result.steps = [{"name": s.name, "seconds": round(s.seconds, 3)} for s in done.steps]
    labels = LabelMap.on_grid_of(volume, array, labels=table)
    if method:
        labels.metadata["method"] = spec.name
    else:
        labels.metadata["pipeline"] = done.pipeline
        labels.metadata["pipeline_description"] = done.description
    if reasons:
        labels.metadata["warnings"] = list(reasons)
    if probabilities is not None and probabilities.shape[1:] != labels.shape:
        probabilities = None
    plausible = assess(labels, probabilities, volume)
    labels.metadata["plausibility"] = plausible.to_json()
    result.plausibility = plausible.to_json()
    if uncertainty is not None:
        result.uncertainty = str(_save_uncertainty(volume, probabilities, uncertainty))
    result.output = str(save(labels, output))
    result.labels, result.volumes_ml = _volumes(labels)
    instances, result.lesion_count, result.lesion_ml = _lesions(labels)
    if detect:
        from .. import __version__
        from ..lesions import measure_lesions, write_findings
        from ..methods.lesion_step import findings_source

        folder = Path(findings_folder) if findings_folder is not None else Path(output).parent
        folder.mkdir(parents=True, exist_ok=True)
        # a lesions step's mean probability gives each finding its confidence
        probability = None if method else done.info.get("lesion_probability")
        findings = measure_lesions(instances, volume, tissue=labels, probability=probability)
        source = ({"input": str(image), "method": spec.name, "delineo": __version__}
                  if method else findings_source(image, done))
        result.findings = [str(p) for p in write_findings(findings, folder,
                                                          stem=findings_stem, source=source)]
    if truth is not None:
        result.dice = _dice(np.asarray(labels.array), np.asarray(truth.array))
    result.total_seconds = time.perf_counter() - start
    return result


def _save_uncertainty(image: Volume, probabilities: np.ndarray | None,
                      path: str | Path) -> Path:
    from ..evaluation.plausibility import uncertainty_map

    if probabilities is None:
        raise DelineoError("--uncertainty needs class probabilities, and this method gives "
                           "none (the networks and pipelines that start with one do)")
    umap = image.with_array(uncertainty_map(probabilities), modality="UNCERTAINTY")
    umap.metadata = {"description": "Delineo voxel uncertainty (normalised entropy)"}
    return save(umap, path)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, DelineoError | OSError):
        if isinstance(exc, OSError) and not isinstance(exc, DelineoError):
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            return f"{where}{exc.strerror or text}"
        return text
    return f"internal error: {type(exc).__name__}: {text or '(no message)'}"


def process_case(case: Case, out: str | Path, config: CaseConfig, *,
                 worker: str | None = None, attempt: int = 1,
                 compiled: Sequence[str] = ()) -> CaseResult:
    """Run one case of a batch into *out*; never raises for a bad case.

    The label file, the findings (``config.detect``) and last the case record
    are written atomically; any error becomes a ``"failed"`` result with its
    one-line message (and the record of an earlier run, if any, is removed so
    that the failure is not mistaken for a finished case).
    """
    where = case_outputs(out, case.case_id)
    start = time.perf_counter()
    try:
        where.labels.parent.mkdir(parents=True, exist_ok=True)
        where.record.parent.mkdir(parents=True, exist_ok=True)
        result = run_case(
            case.image, where.labels, method=config.method, pipeline=config.pipeline,
            params=config.params, overrides=config.overrides, device=config.device,
            series=case.series, allow_outside_use=config.allow_outside_use,
            detect=config.detect, findings_folder=where.findings_folder,
            findings_stem=where.findings_stem, ground_truth=case.ground_truth,
            override_hint="--allow-outside-use")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one bad case must not stop the batch
        where.record.unlink(missing_ok=True)
        return CaseResult(case=case.case_id, status="failed", error=_one_line(exc),
                          image=case.image, method=config.method, pipeline=config.pipeline,
                          total_seconds=time.perf_counter() - start,
                          worker=worker or worker_name(), attempts=attempt)
    result = replace(result, case=case.case_id, worker=worker or worker_name(),
                     attempts=attempt, total_seconds=time.perf_counter() - start,
                     compiled=list(compiled))
    record = {"format": RECORD_FORMAT, "version": 1, "config": config_key(config),
              "ground_truth": case.ground_truth, "result": result.to_json()}
    atomic_write_text(where.record, json.dumps(record, indent=2, allow_nan=False,
                                               default=_jsonable) + "\n")
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def config_key(config: CaseConfig) -> dict[str, Any]:
    """What must match for an earlier output to count as this run's (for resuming)."""
    params = None
    if config.params is not None:
        params = {k: _jsonable(v) if not isinstance(v, int | float | str | bool) else v
                  for k, v in asdict(config.params).items()}
    overrides = ({str(k): {n: str(v) for n, v in dict(d).items()}
                  for k, d in config.overrides.items()} if config.overrides else None)
    return {"method": config.method, "pipeline": None if config.method else config.what,
            "params": params, "overrides": overrides,
            "allow_outside_use": config.allow_outside_use, "detect": config.detect}


def completed_case(case: Case, out: str | Path, config: CaseConfig) -> CaseResult | None:
    """The earlier result of *case* when its outputs exist and load back, else ``None``.

    Checks the case record (same method or pipeline, parameters, ``--detect``
    and ground truth as now), loads the label file back (its result record
    included) and, with ``detect``, the findings.
    """
    where = case_outputs(out, case.case_id)
    try:
        record = json.loads(where.record.read_text(encoding="utf-8"))
        if record.get("format") != RECORD_FORMAT or record.get("config") != config_key(config):
            return None
        if record.get("ground_truth") != case.ground_truth:
            return None
        result = CaseResult.from_json(record["result"])
        labels = load_labels(where.labels)
        facts = labels.metadata.get("result") or {}
        if not facts.get("plausibility"):
            return None
        if config.detect:
            findings = json.loads(where.findings[0].read_text(encoding="utf-8"))
            if findings.get("format") != "delineo-findings" or not where.findings[1].is_file():
                return None
    except (OSError, ValueError, KeyError, TypeError, DelineoError):
        return None
    result.status = "skipped"
    result.warnings = list(facts.get("warnings") or [])
    result.plausibility = dict(facts.get("plausibility") or {})
    return result
