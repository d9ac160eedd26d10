"""Where a sweep's runs execute: in sequence in this process, or as Ray tasks.

:func:`run_task` is the unit shipped to a Ray worker: it executes one run and records how it ended
in the run's ``status.json``. :func:`run_local` and :func:`run_ray` feed a list of run specs
through it and report progress as events; :func:`ray_session` connects to (or starts) Ray. Ray is
imported only by the Ray backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError, LifelongError
from lifelong.experiments.config import from_dict
from lifelong.experiments.run import execute
from lifelong.experiments.runner import torch_threads
from lifelong.experiments.sweep.status import now, read_status, write_status

#: Metrics copied into a finished run's status (and shown in the summary table), in this order.
SUMMARY_METRICS = ("acc", "aia", "bwt", "fwt", "forgetting", "learning_accuracy")
#: A progress callback: ("start", {"title", "total", "skipped"}), ("tick", {"running": n}) or ("finished", status).
Event = Callable[[str, dict[str, Any]], None]


def run_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute one run and record how it ended in ``<run_dir>/status.json``; never raises an
    ``Exception`` (the error is recorded and returned), so one bad run cannot stop a sweep.

    ``spec`` holds ``name``, ``run_dir``, ``config`` (a run-config dict), ``resume`` (continue from
    the run's checkpoints) and ``on_ray`` (record the Ray node id; Ray is imported only then).
    """
    run_dir = Path(spec["run_dir"])
    where = {"hostname": socket.gethostname(), "pid": os.getpid()}
    if spec.get("on_ray"):
        import ray

        where["node_id"] = ray.get_runtime_context().get_node_id()
    status: dict[str, Any] = {"name": spec["name"], "status": "running", **where, "started_at": now()}
    write_status(run_dir, status)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        cfg = from_dict(spec["config"])
        with torch_threads(cfg.threads):  # the run's thread count, restored after it (a Ray worker runs many)
            metrics = execute(cfg, run_dir, resume=bool(spec.get("resume")), force=True)
        status.update(status="done", threads=cfg.threads,
                      metrics={k: v[0] for k, v in metrics["summary"].items() if k in SUMMARY_METRICS})
    except Exception as e:  # recorded in status.json and shown in the summary, never dropped
        status.update(status="failed", error=str(e) or type(e).__name__, error_type=type(e).__name__,
                      traceback=None if isinstance(e, LifelongError) else traceback.format_exc())
    status.update(finished_at=now(), wall_time_s=round(time.perf_counter() - t0, 3),
                  cpu_time_s=round(time.process_time() - cpu0, 3))
    write_status(run_dir, status)
    return status


def run_local(specs: list[dict[str, Any]], on_event: Event) -> None:
    """Execute the runs in sequence in this process (each restores torch's thread count when it ends)."""
    for spec in specs:
        on_event("tick", {"running": 1})
        on_event("finished", run_task(spec))


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'lifelong[sweep]', or pass --backend local") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, temp_dir: str | Path | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of a ``with`` block and yield the ``ray`` module.

    - Ray already initialised in this process: use it, leave it running.
    - ``address`` (or ``$RAY_ADDRESS``): connect to that cluster.
    - otherwise: start a local Ray with ``num_cpus`` (default ``os.cpu_count()``), no dashboard,
      workers at nice 0 (Ray's default is 15), its session files under ``temp_dir`` (default a new
      short directory in /tmp, removed at the end: Ray's socket paths must stay under ~107 bytes),
      and shut it down at the end.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    created = None
    if address:
        if num_cpus is not None:
            raise ConfigError("--num-cpus applies to a local Ray only; a cluster's CPUs are set by `ray start --num-cpus`")
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private single-machine Ray needs no token
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray starts workers at nice 15; runs are the work asked for, so give them the priority the
        # local backend has (on a shared machine, nice 15 halves their share of a busy core)
        os.environ.setdefault("RAY_worker_niceness", "0")
        if temp_dir is None:
            temp_dir = created = tempfile.mkdtemp(prefix="lray-", dir="/tmp")
        if num_cpus is not None and num_cpus < 1:
            raise ConfigError(f"--num-cpus must be >= 1, got {num_cpus}")
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _temp_dir=str(Path(temp_dir).resolve()),
                 include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def run_ray(specs: list[dict[str, Any]], on_event: Event, *, cpus_per_run: int, strategy: str) -> None:
    """Execute every run as a Ray task of ``cpus_per_run`` CPUs (inside :func:`ray_session`).

    A worker or node that dies is recorded as a failed run; an interrupt cancels the pending tasks.
    """
    ray = _import_ray()
    remote = ray.remote(run_task).options(num_cpus=cpus_per_run, scheduling_strategy=strategy)
    refs = {remote.remote({**spec, "on_ray": True}): spec for spec in specs}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            for ref in ready:
                spec = refs[ref]
                try:
                    status = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker or node died; run_task could not record it
                    status = {"name": spec["name"], "status": "failed", "error_type": type(e).__name__,
                              "error": str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__,
                              "finished_at": now()}
                    write_status(Path(spec["run_dir"]), status)
                on_event("finished", status)
            running = sum(read_status(Path(refs[r]["run_dir"])).get("status") == "running" for r in pending)
            on_event("tick", {"running": running})
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise

