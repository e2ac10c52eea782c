"""Run a cohort on Ray: workers that keep their networks loaded, one case at a time each.

:func:`run_batch` starts an embedded Ray cluster on this machine (bound to
127.0.0.1, no dashboard, its session files in a temporary folder, shut down
whatever happens) or joins an existing one (``address``, or ``RAY_ADDRESS``),
creates *workers* actors and hands each one case at a time, in completion
order (``ray.wait``), so a slow case never holds up the others.

Failure handling:

* a bad case fails inside its worker (:func:`~engine.batch.case.process_case`)
  and comes back as a failed row;
* a worker process that dies (killed, out of memory, a crash in native code)
  is restarted by Ray (``max_restarts=-1``) and its case is given again, up to
  *retries* more times, then marked failed ("the worker died ... times");
  Ray's own task retry is off (``max_task_retries=0``) so that the driver
  counts the attempts and a case that kills its worker cannot loop forever;
* a case running longer than *timeout* seconds has its worker killed (and
  restarted) and is marked failed, so the run never hangs.

Ray is an optional dependency (``pip install 'delineo[cluster]'``);
:func:`require_ray` raises :class:`RayMissingError` without it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DelineoError, ParameterError
from .case import CaseConfig, CaseResult, completed_case, process_case, worker_name
from .cases import Case

__all__ = ["INSTALL_HINT", "BatchRun", "RayMissingError", "loopback_only", "require_ray",
           "run_batch", "threads_per_worker"]

log = logging.getLogger(__name__)

#: Seconds the workers may take to start (a cluster without the CPUs or GPUs asked for
#: never starts them).
START_TIMEOUT = 300

#: Seconds more per network for workers that compile their networks
#: (``CaseConfig.compile``; about 40 s a network on two cores, without inductor's cache).
COMPILE_TIMEOUT = 300

#: What to type to get Ray.
INSTALL_HINT = "pip install 'delineo[cluster]'"

OnResult = Callable[[CaseResult, "BatchRun"], None]


class RayMissingError(ParameterError):
    """``batch`` needs Ray, which is not installed (exit status 2)."""


def require_ray() -> Any:
    """The ``ray`` module; :class:`RayMissingError` when it cannot be imported."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(f"batch needs Ray, which is not installed: {INSTALL_HINT}"
                              ) from None
    return ray


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads of each worker so that workers x threads <= cores (at least 1)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


@dataclass
class BatchRun:
    """The state and outcome of one :func:`run_batch` call.

    ``results`` are in the order of the cases; ``worker_pids`` maps each
    worker's index to the process id it runs in (updated when a worker is
    restarted); ``cluster_cpus`` / ``cluster_gpus`` are the cluster's
    resources; ``started`` / ``ended`` are UTC ISO times.
    """

    engine: str = "ray"
    address: str = "local"
    workers: int = 0
    threads: int = 1
    cluster_nodes: int = 0
    cluster_cpus: float = 0.0
    cluster_gpus: float = 0.0
    started: str = ""
    ended: str = ""
    results: list[CaseResult] = field(default_factory=list)
    worker_pids: dict[int, int] = field(default_factory=dict)
    skipped: int = 0

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "skipped": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _method_names(config: CaseConfig) -> list[str]:
    """The registered methods the method or pipeline runs."""
    from ..methods import METHODS
    from ..methods.pipeline import get_pipeline

    names = [config.method] if config.method else [s.name for s in
                                                   get_pipeline(config.what).steps]
    return [n for n in names if n in METHODS]


def _networks(config: CaseConfig) -> dict[str, str]:
    """Delineo's own networks the method or pipeline uses, each with the arithmetic its
    step runs it in (``precision``): registered CNN methods and, for a pipeline with the
    ``lesions`` step, its lesion networks (both, or the first alone where the step's
    ``ensemble`` is off)."""
    from ..methods import METHODS
    from ..methods.lesion_step import LesionParams, lesion_networks
    from ..methods.pipeline import get_pipeline

    if config.method:
        spec = METHODS.get(config.method)
        if spec is None or spec.kind != "cnn":
            return {}
        params = config.params if config.params is not None else spec.params_type()
        return {config.method: str(params.precision)}
    out: dict[str, str] = {}
    for step in get_pipeline(config.what).with_params(config.overrides or {}).steps:
        if step.name in METHODS and METHODS[step.name].kind == "cnn":
            default = METHODS[step.name].params_type().precision
            out[step.name] = str(step.params.get("precision", default))
        elif step.name == "lesions":
            precision = str(step.params.get("precision", LesionParams().precision))
            for name in lesion_networks(step.params.get("ensemble", True)):
                out[name] = precision
    return out


def _network_names(config: CaseConfig) -> list[str]:
    """The names of :func:`_networks`, in the order the method or pipeline runs them."""
    return list(_networks(config))


def _extracts_brain(config: CaseConfig) -> bool:
    """Whether the method or pipeline runs brain extraction (deepbet's networks)."""
    from ..methods import METHODS

    return any(METHODS[n].kind == "brain_extraction" for n in _method_names(config))


class _Worker:
    """A Ray actor: loads the networks once, then processes cases one by one."""

    def __init__(self, out: str, config: CaseConfig, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.out, self.config = out, config
        self.name = worker_name()
        self.compiled: list[str] = []  # networks running torch.compile-d (config.compile)
        self._load_networks()

    def _load_networks(self) -> None:
        from ..methods import brain_extraction, cnn

        if _extracts_brain(self.config):
            try:
                brain_extraction.preload(self.config.device)
            except Exception as exc:  # each case then fails with this error, as a row
                log.warning("worker %s: cannot load brain extraction: %s", self.name, exc)
        for name, precision in _networks(self.config).items():
            try:
                pred = cnn.cached_predictor(name, self.config.device)  # kept for every case
            except Exception as exc:  # each case then fails with this error, as a row
                log.warning("worker %s: cannot load network %s: %s", self.name, name, exc)
                continue
            if self.config.compile:
                pred.precision = precision  # compile for the arithmetic the step will use
                if pred.compile():  # logs a warning and stays eager where it cannot
                    self.compiled.append(name)

    def pid(self) -> int:
        return os.getpid()

    def process(self, case: Case, attempt: int) -> CaseResult:
        return process_case(case, self.out, self.config, worker=self.name, attempt=attempt,
                            compiled=self.compiled)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While inside, a Ray cluster started from this process advertises 127.0.0.1 only.

    Ray replaces 127.0.0.1 by the machine's network address unless clusters
    are switched off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when Ray is
    imported): set it for this process (Ray already imported) and the
    processes it starts, and restore both afterwards.
    """
    from ray._private import ray_constants

    name = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    before_env, before = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before_env


def _start_ray(ray: Any, address: str | None, cpus: int, gpus: int | None,
               temp_dir: Path | None) -> bool:
    """Start or join Ray; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": "error", "configure_logging": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=cpus, num_gpus=gpus, _node_ip_address="127.0.0.1",
                 _temp_dir=str(temp_dir) if temp_dir else None, **kwargs)
    return True


def run_batch(
    cases: Sequence[Case],
    out: str | Path,
    config: CaseConfig,
    *,
    workers: int = 0,
    threads: int = 0,
    address: str | None = None,
    retries: int = 2,
    timeout: float | None = None,
    force: bool = False,
    on_result: OnResult | None = None,
    on_skip: Callable[[CaseResult], None] | None = None,
) -> BatchRun:
    """Process *cases* into the folder *out* on Ray.

    Parameters
    ----------
    cases : sequence of Case
        Unique case ids.
    out : str or Path
        Output folder (created).
    config : CaseConfig
        How each case is run.
    workers : int
        Worker actors; 0: one per CPU of this machine (local cluster) or of the
        cluster (``address``), one per GPU with a CUDA ``config.device``; never
        more than the cases to run.
    threads : int
        Torch threads per worker; 0: the cores of a node divided by the
        workers on it (so that workers x threads <= cores).
    address : str, optional
        An existing Ray cluster (``ray://...`` or ``HOST:PORT``, or ``auto``);
        default ``RAY_ADDRESS`` when set, else an embedded local cluster.
    retries : int
        How many more times a case is given to a worker after its worker died.
    timeout : float, optional
        Seconds a case may run before its worker is killed and it is failed.
    force : bool
        Redo cases whose outputs already exist and load back.
    on_result, on_skip
        Called with each finished (or failed) result, in completion order,
        and with each case skipped because its outputs exist.

    Returns
    -------
    BatchRun
    """
    if retries < 0:
        raise ParameterError(f"retries must be >= 0, not {retries}")
    if threads < 0:
        raise ParameterError(f"threads must be >= 0, not {threads}")
    if timeout is not None and timeout <= 0:
        raise ParameterError(f"the time-out must be > 0 seconds, not {timeout}")
    ray = require_ray()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = BatchRun(started=_now())
    by_id: dict[str, CaseResult] = {}
    todo: list[Case] = []
    for case in cases:
        earlier = None if force else completed_case(case, out, config)
        if earlier is None:
            todo.append(case)
        else:
            by_id[case.case_id] = earlier
            run.skipped += 1
            if on_skip is not None:
                on_skip(earlier)
    address = address or os.environ.get("RAY_ADDRESS") or None
    run.address = address or "local"
    gpu = config.device.startswith("cuda")
    cores = os.cpu_count() or 1
    if todo:
        n_workers = workers if workers > 0 else cores
        n_workers = max(1, min(n_workers, len(todo)))
        temp_dir = None if address else Path(tempfile.mkdtemp(prefix="delineo-ray-"))
        wanted_threads = threads
        threads = threads if threads > 0 else threads_per_worker(n_workers, cores)
        started_here = False
        local = contextlib.ExitStack()
        try:
            if not address and not ray.is_initialized():
                local.enter_context(loopback_only())
            started_here = _start_ray(ray, address, n_workers * threads if not address else 0,
                                      None, temp_dir)
            resources = ray.cluster_resources()
            run.cluster_cpus = float(resources.get("CPU", 0))
            run.cluster_gpus = float(resources.get("GPU", 0))
            run.cluster_nodes = len([n for n in ray.nodes() if n.get("Alive")])
            if workers <= 0 and address:
                pool = run.cluster_gpus if gpu else run.cluster_cpus
                n_workers = max(1, min(int(pool) or 1, len(todo)))
            if address and wanted_threads <= 0:
                per_node = run.cluster_cpus / max(1, run.cluster_nodes)
                threads = max(1, int(per_node // max(1, -(-n_workers // max(1,
                                                                          run.cluster_nodes)))))
            run.workers, run.threads = n_workers, threads
            _drive(ray, todo, out, config, run, by_id, n_workers=n_workers, threads=threads,
                   gpu=gpu, retries=retries, timeout=timeout, on_result=on_result)
        finally:
            if started_here:
                ray.shutdown()
            local.close()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
    run.results = [by_id[c.case_id] for c in cases]
    run.ended = _now()
    return run


def _drive(ray: Any, todo: list[Case], out: Path, config: CaseConfig, run: BatchRun,
           by_id: dict[str, CaseResult], *, n_workers: int, threads: int, gpu: bool,
           retries: int, timeout: float | None, on_result: OnResult | None) -> None:
    """Hand out the cases one at a time per worker until every case has a result."""
    from ray.exceptions import GetTimeoutError, RayActorError, WorkerCrashedError

    options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0,
                               "num_cpus": 0 if gpu else 1, "num_gpus": 1 if gpu else 0}
    actor_class = ray.remote(_Worker).options(**options)
    actors = [actor_class.remote(str(out), config, threads) for _ in range(n_workers)]
    start_timeout = START_TIMEOUT + (COMPILE_TIMEOUT * len(_networks(config))
                                     if config.compile else 0)
    try:
        try:
            pids = ray.get([a.pid.remote() for a in actors], timeout=start_timeout)
        except GetTimeoutError:
            raise DelineoError(
                f"the Ray workers did not start within {start_timeout} s (does the cluster "
                f"have {'a GPU' if gpu else 'a CPU'} free for each of the {n_workers} "
                "workers?)") from None
        except RayActorError as exc:
            text = " ".join(str(exc).split())[:300]
            raise DelineoError(f"the Ray workers could not start: {text}") from None
        run.worker_pids.update(enumerate(pids))
        queue = list(reversed(todo))  # pop() from the end = first case first
        attempts: dict[str, int] = {}
        running: dict[Any, tuple[int, Case, float]] = {}
        idle = list(range(n_workers))

        def submit(index: int, case: Case) -> None:
            attempts[case.case_id] = attempts.get(case.case_id, 0) + 1
            ref = actors[index].process.remote(case, attempts[case.case_id])
            running[ref] = (index, case, time.monotonic())

        def finish(result: CaseResult) -> None:
            by_id[result.case] = result
            if on_result is not None:
                on_result(result, run)

        while queue or running:
            while queue and idle:
                submit(idle.pop(0), queue.pop())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                index, case, _ = running.pop(ref)
                try:
                    result = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    if attempts[case.case_id] <= retries:
                        queue.append(case)  # again, next
                    else:
                        finish(_failed(case, config, attempts[case.case_id],
                                       f"the worker died {attempts[case.case_id]} times "
                                       f"running this case ({type(exc).__name__})"))
                else:
                    pid = result.worker.rpartition(":")[2]
                    if pid.isdigit():
                        run.worker_pids[index] = int(pid)
                    finish(result)
                idle.append(index)
            if timeout is not None:
                now = time.monotonic()
                for ref, (index, case, began) in list(running.items()):
                    if now - began > timeout:
                        running.pop(ref)
                        ray.kill(actors[index], no_restart=False)
                        finish(_failed(case, config, attempts[case.case_id],
                                       f"timed out after {timeout:g} s (its worker was "
                                       "restarted)"))
                        idle.append(index)
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor, no_restart=True)


def _failed(case: Case, config: CaseConfig, attempts: int, error: str) -> CaseResult:
    return CaseResult(case=case.case_id, status="failed", error=error, image=case.image,
                      method=config.method, pipeline=config.pipeline, attempts=attempts)
