"""Experiment grids: expand a sweep file into runs and execute them on Ray, or locally in sequence.

A sweep file is a run config (see :mod:`lifelong.experiments.config`) plus an ``[axes]`` table that maps dotted
config keys to lists of values, and an optional ``[sweep]`` table of execution options::

    name = "er-vs-naive"          # the sweep directory: <out>/<name>/
    seeds = [0, 1, 2]             # the seeds axis (or put `seeds` in [axes])

    [dataset]
    name = "fashion_mnist"

    [scenario]
    name = "class_incremental"
    n_chunks = 5

    [learner]
    name = "er"

    [axes]
    "learner.name" = ["naive", "er"]
    "learner.mem_size" = [200, 500]
    "train.lr" = [0.01, 0.05]

    [sweep]
    backend = "ray"               # or "local"
    cpus_per_run = 1              # Ray CPUs per run; torch threads default to the same number

The grid is the product of the axes, seeds innermost. Each (cell, seed) is one run with one seed,
executed by :func:`lifelong.experiments.run.execute` into ``<sweep_dir>/<run_name>/``. When ``learner.name``
is an axis, a ``learner.*`` value that the cell's learner does not accept (``mem_size`` for
``naive``) is dropped for that cell and the duplicate cells this makes are merged; a key that no
registered learner accepts is kept, so a typo fails loudly.

Around the runs the sweep directory holds ``sweep.toml`` (the file as given), ``plan.json`` (every
run's name, cell, seed and config), one ``status.json`` per run (``queued``, ``running``, ``done``
or ``failed`` with the error, plus the node id, host name and pid that ran it) and, at the end,
``summary.md`` / ``summary.json``: mean ± std of each metric per cell, over seeds, plus the
``lifelong compare`` report over the cells (``compare.md``, ``compare.html``; each cell is also a
run directory ``cells/<cell>/`` holding its seeds together).

Backends
--------
``ray``
    Every run is a Ray task with ``num_cpus=cpus_per_run``. Without ``--address`` (or
    ``$RAY_ADDRESS``) a local Ray is started with ``num_cpus`` from the machine and torn down at the
    end; with an address the runs go to that cluster, whose nodes must all see the sweep directory
    (a shared file system). An already initialised Ray (``ray.is_initialized()``) is used as is.
``local``
    The runs execute in sequence in this process. Ray is never imported.

Each run pins torch's intra-op thread count to the config's ``threads`` if set, else to
``cpus_per_run``, in both backends, so the same sweep gives byte-identical per-run logs either way.

Examples
--------
>>> plan = parse_sweep({"name": "s", "seeds": [0, 1], "learner": {"name": "er"},
...                     "axes": {"learner.name": ["naive", "er"], "learner.mem_size": [50, 100]}})
>>> [r.name for r in plan.runs]
['learner=naive,seed=0', 'learner=naive,seed=1', 'learner=er,mem_size=50,seed=0', 'learner=er,mem_size=50,seed=1', 'learner=er,mem_size=100,seed=0', 'learner=er,mem_size=100,seed=1']
>>> plan.runs[0].dropped
('learner.mem_size',)
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lifelong.experiments.config import SECTIONS, RunConfig, from_dict, load_config, read_toml
from lifelong.errors import ConfigError, LifelongError

#: Sections whose keys an axis or a search range may set, as "section.key".
AXIS_SECTIONS = tuple(s for s in SECTIONS if s != "reference")
#: Top-level run-config keys an axis may set (name and seeds are the sweep's own).
AXIS_TOP_LEVEL = ("threads", "checkpoint")
BACKENDS = ("ray", "local")
STRATEGIES = {"default": "DEFAULT", "spread": "SPREAD"}
SWEEP_OPTIONS = {"backend": str, "cpus_per_run": int, "strategy": str}
#: Metrics shown in the summary table, in this order, when present.
SUMMARY_METRICS = ("acc", "aia", "bwt", "fwt", "forgetting", "learning_accuracy")


# -- dotted keys -------------------------------------------------------------------------------
def check_key(key: str, *, where: str) -> tuple[str, ...]:
    """Split a dotted config key ("learner.mem_size") into its path, or raise ConfigError."""
    parts = tuple(key.split("."))
    if len(parts) == 1 and parts[0] in AXIS_TOP_LEVEL:
        return parts
    if len(parts) != 2 or parts[0] not in AXIS_SECTIONS or not parts[1]:
        raise ConfigError(
            f"{where}: {key!r} is not a config key; write 'section.key' with a section from "
            f"{list(AXIS_SECTIONS)} (e.g. 'learner.mem_size', 'train.lr'), or one of {list(AXIS_TOP_LEVEL)}"
        )
    return parts


def apply_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the config dict ``base`` with each dotted key of ``values`` set.

    Setting ``learner.name`` (or ``dataset.name``, ``scenario.name``) keeps the section's other
    keys; :func:`expand` decides which ``learner.*`` keys still apply.

    Examples
    --------
    >>> apply_values({"train": {"lr": 0.1}}, {"train.lr": 0.01, "learner.name": "er"})
    {'train': {'lr': 0.01}, 'learner': {'name': 'er'}}
    """
    out = copy.deepcopy(base)
    for key, value in values.items():
        parts = check_key(key, where="config value")
        if len(parts) == 1:
            out[parts[0]] = copy.deepcopy(value)
        else:
            section = out.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"[{parts[0]}] must be a table, got {type(section).__name__}")
            section[parts[1]] = copy.deepcopy(value)
    return out


# -- the plan ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a cell of the grid and one seed."""

    name: str  # directory name under the sweep directory; unique and deterministic
    cell: str  # the name shared by the seeds of one cell (the run name without its seed)
    values: dict[str, Any]  # axis key -> value, in axis order (dropped keys removed)
    seed: int
    config: RunConfig
    dropped: tuple[str, ...] = ()  # axis or base keys that did not apply to this cell's learner


@dataclass(frozen=True)
class SweepPlan:
    """A parsed sweep file: the base config, the axes, the seeds and the expanded runs."""

    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    seeds: tuple[int, ...]
    runs: list[RunSpec]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "axes": self.axes, "seeds": list(self.seeds), "options": self.options,
            "runs": [{"name": r.name, "cell": r.cell, "values": r.values, "seed": r.seed,
                      "dropped": list(r.dropped), "config": r.config.to_dict()} for r in self.runs],
        }


def _fmt_value(value: Any) -> str:
    """A short filesystem-safe spelling of an axis value: 0.05, er, 32x32, true."""
    if isinstance(value, bool):
        s = str(value).lower()
    elif isinstance(value, float):
        s = repr(value)
    elif isinstance(value, (list, tuple)):
        s = "x".join(_fmt_value(v) for v in value)
    elif isinstance(value, dict):
        s = "-".join(f"{k}{_fmt_value(v)}" for k, v in value.items())
    else:
        s = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", s) or "_"


def _labels(keys: Sequence[str]) -> dict[str, str]:
    """Short column labels: "learner" for learner.name, the last part otherwise, the whole key if
    two axes would share a label."""
    short = {k: (k.split(".")[0] if k.endswith(".name") else k.split(".")[-1]) for k in keys}
    counts: dict[str, int] = {}
    for s in short.values():
        counts[s] = counts.get(s, 0) + 1
    return {k: (s if counts[s] == 1 else k) for k, s in short.items()}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _accepted_learner_keys(name: str) -> set[str] | None:
    from lifelong.learn.methods import LEARNERS, hyperparameters

    return set(hyperparameters(LEARNERS[name])) if name in LEARNERS else None


def _all_learner_keys() -> set[str]:
    from lifelong.learn.methods import LEARNERS, hyperparameters

    return {k for cls in LEARNERS.values() for k in hyperparameters(cls)}


def parse_sweep(data: dict[str, Any], *, source: str = "sweep file") -> SweepPlan:
    """Validate a parsed sweep file and expand it into runs.

    Parameters
    ----------
    data : dict
        The TOML document: run-config keys, ``[axes]`` and optionally ``[sweep]``.
    source : str
        Named in error messages.

    Returns
    -------
    SweepPlan
        Runs in grid order (axes in the file's order, the last axis fastest, seeds innermost).

    Raises
    ------
    ConfigError
        For a malformed axis, an unknown option, or a cell whose config does not validate.
    """
    data = copy.deepcopy(data)
    axes_raw = data.pop("axes", {})
    options = data.pop("sweep", {})
    if not isinstance(axes_raw, dict):
        raise ConfigError(f"{source}: [axes] must be a table of 'section.key' = [values]")
    if not isinstance(options, dict):
        raise ConfigError(f"{source}: [sweep] must be a table")
    for key, value in options.items():
        if key not in SWEEP_OPTIONS:
            raise ConfigError(f"{source}: unknown [sweep] option {key!r}; known: {sorted(SWEEP_OPTIONS)}")
        if not isinstance(value, SWEEP_OPTIONS[key]) or isinstance(value, bool):
            raise ConfigError(f"{source}: [sweep] {key} must be a {SWEEP_OPTIONS[key].__name__}, got {value!r}")
    axes: dict[str, list[Any]] = {}
    seeds_axis = None
    for key, values in axes_raw.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: axis {key!r} must be a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ConfigError(f"{source}: axis {key!r} repeats a value: {values}")
        if key == "seeds":
            seeds_axis = values
            continue
        check_key(key, where=f"{source} [axes]")
        axes[key] = values
    if seeds_axis is not None and "seeds" in data:
        raise ConfigError(f"{source}: give the seeds either as top-level `seeds` or as [axes] seeds, not both")
    if seeds_axis is not None:
        data["seeds"] = seeds_axis
    base_cfg = from_dict(data)  # validates the base config and its seeds
    name = base_cfg.name if "name" in data else "sweep"
    base = base_cfg.to_dict()
    base.pop("seeds")
    base["name"] = name

    learner_varies = "learner.name" in axes
    known_somewhere = _all_learner_keys()
    labels = _labels(list(axes))
    runs: list[RunSpec] = []
    seen_cells: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        cfg_dict = apply_values(base, values)
        dropped: list[str] = []
        if learner_varies:
            accepted = _accepted_learner_keys(cfg_dict["learner"]["name"])
            for k in list(cfg_dict["learner"]):
                if accepted is not None and k != "name" and k not in accepted and k in known_somewhere:
                    del cfg_dict["learner"][k]
                    dropped.append(f"learner.{k}")
        kept = {k: v for k, v in values.items() if k not in dropped}
        cell = ",".join(f"{labels[k]}={_fmt_value(v)}" for k, v in kept.items()) or "base"
        signature = json.dumps(cfg_dict, sort_keys=True, default=str)
        if cell in seen_cells:
            if seen_cells[cell]["signature"] == signature:
                continue  # the same cell again, after dropping keys that did not apply
            cell = f"{cell},{_hash(signature)}"  # two values spelt alike on disk
        seen_cells[cell] = {"signature": signature}
        if len(cell) > 150:
            cell = f"{cell[:140]},{_hash(signature)}"
        for seed in base_cfg.seeds:
            run_dict = {**cfg_dict, "seeds": [seed], "name": f"{cell},seed={seed}" if kept else f"seed={seed}"}
            try:
                cfg = from_dict(run_dict)
            except ConfigError as e:
                raise ConfigError(f"{source}: cell {cell}: {e}") from None
            runs.append(RunSpec(cfg.name, cell, kept, seed, cfg, tuple(dropped)))
    return SweepPlan(name=name, base=base, axes=axes, seeds=base_cfg.seeds, runs=runs, options=dict(options))


def load_sweep(path: str | Path) -> tuple[SweepPlan, str]:
    """Read and expand a sweep file; returns the plan and the file's text."""
    doc, text = read_toml(path, "sweep file")
    return parse_sweep(doc, source=str(path)), text


# -- one run: the unit shipped to a Ray worker ---------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    """Write ``status.json`` atomically (a reader never sees half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / "status.json")


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
    status: dict[str, Any] = {"name": spec["name"], "status": "running", **where, "started_at": _now()}
    write_status(run_dir, status)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        import torch

        from lifelong.experiments.run import execute

        t0, cpu0 = time.perf_counter(), time.process_time()  # the run's own time, without a fresh worker's imports
        cfg = from_dict(spec["config"])
        torch.set_num_threads(cfg.threads)  # execute() pins it too; done here for what runs before
        metrics = execute(cfg, run_dir, resume=bool(spec.get("resume")), force=True)
        status.update(status="done", threads=cfg.threads,
                      metrics={k: v[0] for k, v in metrics["summary"].items() if k in SUMMARY_METRICS})
    except Exception as e:  # recorded in status.json and shown in the summary, never dropped
        status.update(status="failed", error=str(e) or type(e).__name__, error_type=type(e).__name__,
                      traceback=None if isinstance(e, LifelongError) else traceback.format_exc())
    status.update(finished_at=_now(), wall_time_s=round(time.perf_counter() - t0, 3),
                  cpu_time_s=round(time.process_time() - cpu0, 3))
    write_status(run_dir, status)
    return status


# -- backends ------------------------------------------------------------------------------------
Event = Callable[[str, dict[str, Any]], None]  # ("finished", status) or ("tick", {"running": n})


def _run_local(specs: list[dict[str, Any]], on_event: Event) -> None:
    import torch

    threads_before = torch.get_num_threads()
    try:
        for spec in specs:
            on_event("tick", {"running": 1})
            on_event("finished", run_task(spec))
    finally:
        torch.set_num_threads(threads_before)


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


def _run_ray(specs: list[dict[str, Any]], on_event: Event, *, cpus_per_run: int, strategy: str) -> None:
    import ray

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
                              "finished_at": _now()}
                    write_status(Path(spec["run_dir"]), status)
                on_event("finished", status)
            running = sum(read_status(Path(refs[r]["run_dir"])).get("status") == "running" for r in pending)
            on_event("tick", {"running": running})
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


# -- the sweep -----------------------------------------------------------------------------------
@dataclass
class SweepResult:
    sweep_dir: Path
    n_runs: int
    skipped: list[str]
    done: list[str]
    failed: dict[str, str]  # run name -> error message
    summary_path: Path
    wall_time_s: float


def _resolve_options(plan: SweepPlan, backend: str | None, cpus_per_run: int | None, threads: int | None) -> dict[str, Any]:
    opts = {"backend": "ray", "cpus_per_run": 1, "strategy": "default", **plan.options}
    if backend is not None:
        opts["backend"] = backend
    if cpus_per_run is not None:
        opts["cpus_per_run"] = cpus_per_run
    if opts["backend"] not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {opts['backend']!r}")
    if opts["cpus_per_run"] < 1:
        raise ConfigError(f"cpus_per_run must be >= 1, got {opts['cpus_per_run']}")
    if opts["strategy"] not in STRATEGIES:
        raise ConfigError(f"[sweep] strategy must be one of {sorted(STRATEGIES)}, got {opts['strategy']!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    opts["threads"] = threads  # None: each run's config decides (see run_sweep)
    return opts


def _is_finished(run_dir: Path) -> bool:
    return read_status(run_dir).get("status") == "done" and (run_dir / "metrics.json").is_file()


def _can_continue(run_dir: Path) -> bool:
    """An interrupted (not failed) run with checkpoints continues from them instead of restarting."""
    st = read_status(run_dir).get("status")
    return st in ("queued", "running") and (run_dir / "config.toml").is_file() and any((run_dir / "checkpoints").glob("seed*.pt"))


def run_sweep(
    plan: SweepPlan, sweep_dir: str | Path, *, text: str | None = None, backend: str | None = None,
    address: str | None = None, num_cpus: int | None = None, cpus_per_run: int | None = None,
    threads: int | None = None, resume: bool = False, force: bool = False, ray_temp_dir: str | Path | None = None,
    console: Any = None, compare: bool = True,
) -> SweepResult:
    """Execute every run of ``plan`` into ``sweep_dir`` and write the summary.

    Parameters
    ----------
    plan : SweepPlan
        From :func:`parse_sweep` or :func:`load_sweep`.
    sweep_dir : path
        Output directory; each run goes to ``sweep_dir/<run name>/``.
    text : str, optional
        The sweep file's text, saved as ``sweep.toml`` so ``--resume`` can rebuild the plan.
    backend, cpus_per_run : optional
        Override the file's ``[sweep]`` options.
    address, num_cpus, ray_temp_dir : optional
        Where Ray runs (see :func:`ray_session`); ignored by the local backend.
    threads : int, optional
        Torch threads per run (default: the config's ``threads``, else ``cpus_per_run``).
    resume : bool
        Skip runs whose ``status.json`` says done; continue interrupted ones from their checkpoints.
    force : bool
        Start over in a directory that already holds a sweep.
    console : rich.console.Console, optional
        Where progress goes (default: stderr).
    compare : bool
        Also write the ``lifelong compare`` report over the cells (see :func:`write_summary`).

    Returns
    -------
    SweepResult
        Which runs were skipped, done and failed, and where the summary is.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    sweep_dir = Path(sweep_dir)
    opts = _resolve_options(plan, backend, cpus_per_run, threads)
    plan_path = sweep_dir / "plan.json"
    if plan_path.exists() and not (resume or force):
        raise ConfigError(f"{sweep_dir} already holds a sweep; continue it with --resume {sweep_dir}, or pass --force to start over")
    if resume and plan_path.exists():
        old = json.loads(plan_path.read_text(encoding="utf-8"))
        if [r["name"] for r in old["runs"]] != [r.name for r in plan.runs]:
            raise ConfigError(f"{sweep_dir}/plan.json lists other runs than its sweep.toml; start a new sweep with --force")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if text is not None and not resume:
        (sweep_dir / "sweep.toml").write_text(text, encoding="utf-8")
    plan_path.write_text(json.dumps({**plan.to_json(), "resolved": opts}, indent=2, default=str) + "\n", encoding="utf-8")

    skipped, specs = [], []
    for r in plan.runs:
        run_dir = sweep_dir / r.name
        if resume and _is_finished(run_dir):
            skipped.append(r.name)
            continue
        # torch threads: --threads, else the run config's `threads` (base or axis), else one per Ray CPU
        config = {**r.config.to_dict(), "threads": opts["threads"] or r.config.threads or opts["cpus_per_run"]}
        specs.append({"name": r.name, "run_dir": str(run_dir.resolve()), "config": config,
                      "resume": resume and _can_continue(run_dir)})
        write_status(run_dir, {"name": r.name, "status": "queued"})

    done: list[str] = []
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    with SweepDisplay(len(plan.runs), len(skipped), console, title=plan.name) as display:
        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "finished":
                if info.get("status") == "done":
                    done.append(info["name"])
                else:
                    failed[info["name"]] = info.get("error", "unknown error")
                display.finished(info)
            else:
                display.running(info["running"])

        if specs and opts["backend"] == "local":
            _run_local(specs, on_event)
        elif specs:
            with ray_session(address, num_cpus, ray_temp_dir):
                _run_ray(specs, on_event, cpus_per_run=opts["cpus_per_run"], strategy=STRATEGIES[opts["strategy"]])
    summary_path = write_summary(sweep_dir, plan, compare=compare)
    return SweepResult(sweep_dir, len(plan.runs), skipped, done, failed, summary_path, time.perf_counter() - t0)


class SweepDisplay:
    """A rich progress bar (runs done / running / failed, elapsed, ETA) and one line per finished run.

    The bar is drawn only on a terminal; the per-run lines are always printed.
    """

    def __init__(self, total: int, skipped: int, console: Any, *, title: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.total, self.console = total, console
        self.n_done = self.n_failed = self.n_running = 0
        self.n_finished = skipped
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("done {task.fields[done]} · running {task.fields[running]} · failed {task.fields[failed]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(title, total=total, completed=skipped, done=skipped, running=0, failed=0)
        if skipped:
            console.print(f"resume: {skipped} of {total} runs already finished, skipped", highlight=False)

    def __enter__(self) -> SweepDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def running(self, n: int) -> None:
        self.n_running = n
        self._refresh()

    def finished(self, status: dict[str, Any]) -> None:
        self.n_finished += 1
        ok = status.get("status") == "done"
        self.n_done += ok
        self.n_failed += not ok
        self.n_running = max(0, self.n_running - 1)
        where = f"node {status['node_id'][:8]}" if status.get("node_id") else f"pid {status.get('pid', '?')}"
        if ok:
            acc = status.get("metrics", {}).get("acc")
            msg = f"done    {status['name']}  acc {acc:.4f}  {status.get('wall_time_s', 0):.1f}s  {where}"
        else:
            msg = f"FAILED  {status['name']}: {status.get('error_type', '')}: {status.get('error', '')}"
        self.console.print(f"[{self.n_finished}/{self.total}] {msg}", highlight=False, markup=False, soft_wrap=True)
        self._refresh()

    def _refresh(self) -> None:
        self.progress.update(self.task, completed=self.n_finished, done=self.n_finished - self.n_failed,
                             running=self.n_running, failed=self.n_failed)


# -- the summary ---------------------------------------------------------------------------------
def cell_table(sweep_dir: str | Path, plan: SweepPlan) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table of mean ± std over seeds of each metric per cell, and the same as records.

    A cell's statistics use its finished runs only; ``runs`` says how many of its seeds finished.
    """
    from lifelong.evaluate import summarize
    from lifelong.report import fmt

    sweep_dir = Path(sweep_dir)
    cells: dict[str, list[RunSpec]] = {}
    for r in plan.runs:
        cells.setdefault(r.cell, []).append(r)
    labels = _labels(list(plan.axes))
    rows: list[dict[str, Any]] = []
    for cell, runs in cells.items():
        per_seed, times, n_failed = [], [], 0
        for r in runs:
            st = read_status(sweep_dir / r.name)
            if st.get("status") == "done" and (sweep_dir / r.name / "metrics.json").is_file():
                m = json.loads((sweep_dir / r.name / "metrics.json").read_text(encoding="utf-8"))
                per_seed.extend(m["per_seed"].values())
                times.append(float(st.get("wall_time_s", math.nan)))
            elif st.get("status") == "failed":
                n_failed += 1
        stats = summarize(per_seed) if per_seed else {}
        rows.append({"cell": cell, "values": runs[0].values, "n_runs": len(runs), "n_done": len(per_seed),
                     "n_failed": n_failed, "metrics": {k: list(v) for k, v in stats.items()},
                     "wall_time_s": sum(times) / len(times) if times else None})
    metric_keys = [k for k in SUMMARY_METRICS if any(k in row["metrics"] for row in rows)]
    header = [labels[k] for k in plan.axes] + ["seeds done", *metric_keys, "time/run (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        # "—": the axis was dropped for this cell's learner
        cells_txt = ["—" if k not in row["values"] else _show(row["values"][k]) for k in plan.axes]
        seeds_txt = f"{row['n_done']}/{row['n_runs']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        metric_txt = [fmt(*row["metrics"][k], n_seeds=row["n_done"]) if k in row["metrics"] else "n/a" for k in metric_keys]
        time_txt = "n/a" if row["wall_time_s"] is None else f"{row['wall_time_s']:.1f}"
        lines.append("| " + " | ".join([*cells_txt, seeds_txt, *metric_txt, time_txt]) + " |")
    return "\n".join(lines), rows


def cell_runs(sweep_dir: str | Path, plan: SweepPlan) -> list[Path]:
    """One run directory per cell, ``cells/<cell>/``, holding its finished seeds together.

    Its ``log.jsonl`` is the seeds' logs concatenated in seed order, which is byte for byte what
    ``lifelong run`` writes for the cell's config with those seeds; ``metrics.json`` and
    ``report.md`` come from :func:`lifelong.experiments.run.write_outputs`. Cells with no finished seed are left out.
    """
    from lifelong.experiments.run import write_outputs

    sweep_dir = Path(sweep_dir)
    cells: dict[str, list[RunSpec]] = {}
    for r in plan.runs:
        if _is_finished(sweep_dir / r.name):
            cells.setdefault(r.cell, []).append(r)
    out = []
    for cell, runs in cells.items():
        cell_dir = sweep_dir / "cells" / cell
        cell_dir.mkdir(parents=True, exist_ok=True)
        # the config the runs used (with their pinned `threads`, which the numbers depend on)
        cfg = {**load_config(sweep_dir / runs[0].name / "config.toml").to_dict(), "name": cell, "seeds": [r.seed for r in runs]}
        (cell_dir / "config.toml").write_text(from_dict(cfg).to_toml(), encoding="utf-8")
        with open(cell_dir / "log.jsonl", "wb") as f:
            for r in runs:
                f.write((sweep_dir / r.name / "log.jsonl").read_bytes())
        write_outputs(cell_dir)
        out.append(cell_dir)
    return out


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_summary(sweep_dir: str | Path, plan: SweepPlan, *, compare: bool = True) -> Path:
    """Write ``summary.md`` and ``summary.json`` for the sweep; returns the Markdown path.

    With ``compare``, also the ``lifelong compare`` report over the cells (:func:`cell_runs`):
    ``compare.md``, ``compare.html`` and its plots, through :func:`lifelong.report.compare`.
    """
    from lifelong import report

    sweep_dir = Path(sweep_dir)
    table, rows = cell_table(sweep_dir, plan)
    failures = []
    for r in plan.runs:
        st = read_status(sweep_dir / r.name)
        if st.get("status") == "failed":
            failures.append({"name": r.name, "error_type": st.get("error_type"), "error": st.get("error")})
    seeds = ", ".join(map(str, plan.seeds))
    out = [
        f"# Sweep: {plan.name}", "",
        f"{len(plan.runs)} runs: {len(rows)} cells × seeds [{seeds}]. "
        "Each metric is the mean ± sample std over the cell's finished seeds (RWalk forgetting: max-so-far minus last).",
        "", table, "",
    ]
    if failures:
        out += ["## Failed runs", "", "| run | error |", "|---|---|"]
        out += [f"| {f['name']} | {f['error_type']}: {str(f['error']).replace('|', '/')} |" for f in failures]
        out += ["", f"Fix the cause, then `lifelong sweep --resume {sweep_dir}` re-runs only these.", ""]
    path = sweep_dir / "summary.md"
    path.write_text("\n".join(out), encoding="utf-8")  # first without the comparison, which may fail
    (sweep_dir / "summary.json").write_text(json.dumps({"cells": rows, "failed": failures}, indent=2, default=float) + "\n",
                                            encoding="utf-8")
    compare_fn = getattr(report, "compare", None)  # the `lifelong compare` report, where it exists
    if compare and callable(compare_fn):
        dirs = cell_runs(sweep_dir, plan)
        if dirs:
            md = compare_fn(dirs, sweep_dir)  # writes compare.md, compare.html and the PNGs here
            verdict = next((line for line in md.splitlines() if line.startswith("**")), "")
            out += ["## Comparison", "", "Every metric per cell with the best marked, the stability–plasticity scatter "
                    "and the accuracy curves: [compare.md](compare.md), [compare.html](compare.html). "
                    "One run directory per cell (its seeds together): `cells/`.", ""]
            out += [verdict, ""] if verdict else []
            path.write_text("\n".join(out), encoding="utf-8")
    return path


# -- command line --------------------------------------------------------------------------------
def _console():
    from rich.console import Console

    return Console(stderr=True)


def sweep_command(
    sweep_file: Annotated[Optional[Path], typer.Argument(help="sweep file (TOML): a run config plus [axes]")] = None,
    out: Annotated[Path, typer.Option(help="parent directory: the sweep goes to OUT/<name>/")] = Path("sweeps"),
    backend: Annotated[Optional[str], typer.Option(help="ray (default) or local (in sequence, no Ray)")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")] = None,
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray (default: all)")] = None,
    cpus_per_run: Annotated[Optional[int], typer.Option("--cpus-per-run", help="Ray CPUs per run (default 1)")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads per run (default: one per Ray CPU)")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue the sweep in this directory, skipping finished runs")] = None,
    force: Annotated[bool, typer.Option("--force", help="start over in an existing sweep directory")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs and exit")] = False,
) -> None:
    """Run a grid of experiments (axes × seeds) on Ray or locally; write a mean ± std table per cell."""
    console = _console()
    if resume is not None:
        if sweep_file is not None:
            raise ConfigError("give either a sweep file or --resume SWEEP_DIR, not both")
        if not (resume / "sweep.toml").is_file():
            raise ConfigError(f"{resume} is not a sweep directory (no sweep.toml); pass the directory `lifelong sweep` wrote")
        plan, text = load_sweep(resume / "sweep.toml")
        sweep_dir = resume
    elif sweep_file is None:
        raise ConfigError("pass a sweep file (lifelong sweep SWEEP.toml) or --resume SWEEP_DIR")
    else:
        plan, text = load_sweep(sweep_file)
        sweep_dir = out / plan.name
    if dry_run:
        for r in plan.runs:
            extra = f"  (dropped {', '.join(r.dropped)})" if r.dropped else ""
            typer.echo(f"{r.name}{extra}")
        typer.echo(f"{len(plan.runs)} runs -> {sweep_dir}/")
        return
    result = run_sweep(plan, sweep_dir, text=text, backend=backend, address=address, num_cpus=num_cpus,
                       cpus_per_run=cpus_per_run, threads=threads, resume=resume is not None, force=force, console=console)
    typer.echo(result.summary_path.read_text(encoding="utf-8"))
    console.print(f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} skipped "
                  f"in {result.wall_time_s:.1f}s; wrote {result.summary_path}", highlight=False)
    if result.failed:
        console.print(f"some runs failed; fix them and run `lifelong sweep --resume {sweep_dir}`", highlight=False)
        raise SystemExit(1)  # not typer.Exit: cli.main runs the app with standalone_mode=False, which returns its code


def tune_command(
    tune_file: Annotated[Path, typer.Argument(help="tune file (TOML): a run config plus [search] and [tune]")],
    out: Annotated[Path, typer.Option(help="parent directory: results go to OUT/<name>/")] = Path("tunes"),
    algorithm: Annotated[Optional[str], typer.Option(help="random or asha")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", help="number of sampled configurations")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="first-chunks (default) or full-stream (leaky)")] = None,
    first_chunks: Annotated[Optional[int], typer.Option("--first-chunks", help="chunks to tune on (first-chunks protocol)")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")] = None,
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing result directory")] = False,
) -> None:
    """Search hyper-parameters with Ray Tune (random search or ASHA), then evaluate the choice on the full stream."""
    from lifelong.experiments.tune import load_tune, run_tune

    console = _console()
    spec = load_tune(tune_file, algorithm=algorithm, num_samples=num_samples, protocol=protocol, first_chunks=first_chunks)
    result = run_tune(spec, out / spec.name, address=address, num_cpus=num_cpus, force=force, console=console)
    typer.echo(result.summary_path.read_text(encoding="utf-8"))
    console.print(f"wrote {result.out_dir}/ (best.json, history.json, history.csv, best_config.toml, final/)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``tune`` to the ``lifelong`` typer app."""
    app.command("sweep")(sweep_command)
    app.command("tune")(tune_command)
