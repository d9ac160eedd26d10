"""Run a sweep: every run of a plan into the sweep directory, on a backend, then the summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.experiments.sweep.backends import Event, ray_session, run_local, run_ray
from lifelong.experiments.sweep.plan import BACKENDS, STRATEGIES, SweepPlan
from lifelong.experiments.sweep.status import can_continue, is_finished, status_line, write_status
from lifelong.experiments.sweep.summary import write_summary


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the runs skipped (already done), done and failed, and the summary."""

    sweep_dir: Path
    n_runs: int
    skipped: list[str]
    done: list[str]
    failed: dict[str, str]  # run name -> error message
    summary_path: Path
    wall_time_s: float


def resolve_options(plan: SweepPlan, backend: str | None, cpus_per_run: int | None, threads: int | None) -> dict[str, Any]:
    """The execution options: the command's flags over the file's ``[sweep]`` table over the defaults.

    Raises
    ------
    ConfigError
        For an unknown backend or strategy, or a count below 1.
    """
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


def run_sweep(
    plan: SweepPlan, sweep_dir: str | Path, *, text: str | None = None, backend: str | None = None,
    address: str | None = None, num_cpus: int | None = None, cpus_per_run: int | None = None,
    threads: int | None = None, resume: bool = False, force: bool = False, ray_temp_dir: str | Path | None = None,
    on_event: Event | None = None, console: Any = None, compare: bool = True,
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
    on_event : callable, optional
        Called with each progress event (see :data:`~lifelong.experiments.sweep.backends.Event`):
        ``("start", {"title", "total", "skipped"})`` first, then ``("tick", {"running": n})`` and
        ``("finished", status)`` as runs end. The command line draws its progress bar from them.
    console : optional
        Anything with a ``print`` method (a ``rich.console.Console``): without ``on_event``, one
        line per finished run is printed there. With neither, nothing is printed.
    compare : bool
        Also write the ``lifelong compare`` report over the cells (see :func:`write_summary`).

    Returns
    -------
    SweepResult
        Which runs were skipped, done and failed, and where the summary is.
    """
    sweep_dir = Path(sweep_dir)
    opts = resolve_options(plan, backend, cpus_per_run, threads)
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
        if resume and is_finished(run_dir):
            skipped.append(r.name)
            continue
        # torch threads: --threads, else the run config's `threads` (base or axis), else one per Ray CPU
        config = {**r.config.to_dict(), "threads": opts["threads"] or r.config.threads or opts["cpus_per_run"]}
        specs.append({"name": r.name, "run_dir": str(run_dir.resolve()), "config": config,
                      "resume": resume and can_continue(run_dir)})
        write_status(run_dir, {"name": r.name, "status": "queued"})

    done: list[str] = []
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    report = on_event or (_printer(console) if console is not None else (lambda kind, info: None))
    report("start", {"title": plan.name, "total": len(plan.runs), "skipped": len(skipped)})

    def record(kind: str, info: dict[str, Any]) -> None:
        if kind == "finished":
            if info.get("status") == "done":
                done.append(info["name"])
            else:
                failed[info["name"]] = info.get("error", "unknown error")
        report(kind, info)

    if specs and opts["backend"] == "local":
        run_local(specs, record)
    elif specs:
        with ray_session(address, num_cpus, ray_temp_dir):
            run_ray(specs, record, cpus_per_run=opts["cpus_per_run"], strategy=STRATEGIES[opts["strategy"]])
    summary_path = write_summary(sweep_dir, plan, compare=compare)
    return SweepResult(sweep_dir, len(plan.runs), skipped, done, failed, summary_path, time.perf_counter() - t0)



def _printer(console: Any) -> Event:
    """An event callback that prints one line per finished run (``[3/8] done    NAME  acc ...``)."""
    count = {"finished": 0, "total": 0}

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "start":
            count.update(finished=info["skipped"], total=info["total"])
            if info["skipped"]:
                console.print(f"resume: {info['skipped']} of {info['total']} runs already finished, skipped",
                              highlight=False)
        elif kind == "finished":
            count["finished"] += 1
            console.print(f"[{count['finished']}/{count['total']}] {status_line(info)}", highlight=False, markup=False,
                          soft_wrap=True)

    return on_event
