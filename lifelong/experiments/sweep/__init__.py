'''Experiment grids: expand a sweep file into runs and execute them on Ray, or locally in sequence.

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

Modules, one job each
---------------------
:mod:`~lifelong.experiments.sweep.plan`
    the sweep file to a :class:`SweepPlan` (:func:`parse_sweep`, :func:`load_sweep`).
:mod:`~lifelong.experiments.sweep.status`
    the per-run ``status.json`` files.
:mod:`~lifelong.experiments.sweep.backends`
    :func:`run_task` (one run), the local and Ray backends, :func:`ray_session`.
:mod:`~lifelong.experiments.sweep.summary`
    ``summary.md``, ``summary.json``, the per-cell run directories and the comparison.
:mod:`~lifelong.experiments.sweep.execute`
    :func:`run_sweep`: the plan through a backend, then the summary.

The ``lifelong sweep`` command and its progress display live in :mod:`lifelong.cli.sweep`.
'''

from lifelong.experiments.sweep.backends import SUMMARY_METRICS, Event, ray_session, run_local, run_ray, run_task
from lifelong.experiments.sweep.execute import SweepResult, resolve_options, run_sweep
from lifelong.experiments.sweep.plan import (
    AXIS_SECTIONS,
    AXIS_TOP_LEVEL,
    BACKENDS,
    STRATEGIES,
    SWEEP_OPTIONS,
    RunSpec,
    SweepPlan,
    apply_values,
    axis_labels,
    check_key,
    load_sweep,
    open_sweep,
    parse_sweep,
)
from lifelong.experiments.sweep.status import can_continue, is_finished, read_status, status_line, write_status
from lifelong.experiments.sweep.summary import cell_runs, cell_table, write_summary

__all__ = [
    "AXIS_SECTIONS", "AXIS_TOP_LEVEL", "BACKENDS", "STRATEGIES", "SUMMARY_METRICS", "SWEEP_OPTIONS",
    "Event", "RunSpec", "SweepPlan", "SweepResult", "apply_values", "axis_labels", "can_continue", "cell_runs",
    "cell_table", "check_key", "is_finished", "load_sweep", "open_sweep", "parse_sweep", "ray_session", "read_status",
    "resolve_options", "run_local", "run_ray", "run_sweep", "run_task", "status_line", "write_status",
    "write_summary",
]
