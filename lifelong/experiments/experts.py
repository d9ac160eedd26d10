"""L2M single-task experts (STE): the run's learner trained on each task of its lifetime alone.

``[scenario] ste = true`` makes :func:`lifelong.experiments.run.execute` call :func:`run_experts`
after the lifetime; ``lifelong report --ste`` can add them to a finished run. Their logs go to
``<run>/ste/<task>/log.jsonl`` and :func:`lifelong.evaluate.lifetimes.l2m_section` passes them to
the L2M metrics as STE data (relative performance and sample efficiency need them).
"""

from __future__ import annotations

from pathlib import Path

from lifelong.data import Dataset
from lifelong.data.lifetimes import expert_streams
from lifelong.evaluate.lifetimes import expert_dir
from lifelong.experiments.config import RunConfig
from lifelong.experiments.runner import build_run, iter_seed, load_data
from lifelong.log import Record, write_log

__all__ = ["run_experts"]


def run_experts(cfg: RunConfig, run_dir: str | Path, ds: Dataset | None = None) -> dict[str, Path]:
    """Train the run's learner on each task alone, for every seed; logs go to ``<run>/ste/<task>/``.

    Each expert uses the run's learner, model and training settings and the same seed as the
    lifetime it is compared with (:func:`lifelong.experiments.runner.build_run` on the task's
    :func:`~lifelong.data.lifetimes.expert_streams` stream); its log holds every seed.

    Parameters
    ----------
    cfg : RunConfig
        The run's config; its scenario must be an L2M lifetime.
    run_dir : str or Path
        The run directory.
    ds : Dataset, optional
        The loaded dataset (loaded from the config when omitted).

    Returns
    -------
    dict of str to Path
        Task name -> the expert's log file.
    """
    ds = load_data(cfg) if ds is None else ds
    logs: dict[str, list[Record]] = {}
    for seed in cfg.seeds:
        for task, stream in expert_streams(ds, cfg.scenario, seed).items():
            run = build_run(cfg, seed, ds, stream=stream)
            logs.setdefault(task, []).extend(iter_seed(run, meta={"ste": True}))
    out = {}
    for task, records in logs.items():
        path = expert_dir(run_dir, task) / "log.jsonl"
        write_log(path, records)
        out[task] = path
    return out
