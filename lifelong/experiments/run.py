"""Run directories: execute a :class:`~lifelong.experiments.config.RunConfig` over its seeds, with checkpoints
after every chunk and exact resume.

``runs/<name>/`` holds ``config.toml``, ``log.jsonl``, ``metrics.json``, ``report.md`` and
``checkpoints/seed<s>.pt``. A checkpoint is a ``state_dict`` (learner, optimiser, memory,
generators) plus the position in the stream and the byte length the log had at that point, so a
resumed run truncates the log there and continues exactly as an uninterrupted one would.

Stream, model and learner come from the one runner (:mod:`lifelong.experiments.runner`); this
module adds the directory, the log file and the checkpoints. ``threads`` in the config sets torch's
thread count for the run only: it is restored when :func:`execute` returns or raises.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lifelong.data import Dataset
from lifelong.data.scenarios import Stream
from lifelong.errors import CheckpointError, ConfigError
from lifelong.evaluate import accuracy_matrix, classic_metrics, seeds, stability_gap, summarize
from lifelong.evaluate.health import run_warnings
from lifelong.evaluate.lifetimes import STE_DIR, l2m_section
from lifelong.experiments.config import RunConfig, load_config
from lifelong.experiments.experts import run_experts
from lifelong.experiments.runner import BuiltRun, build_run, load_data, loop_config, torch_threads
from lifelong.experiments.runner import iter_seed as run_records
from lifelong.experiments.track import Trackers, open_trackers, require
from lifelong.learn.base import TrainingDiverged
from lifelong.learn.methods import LEARNERS
from lifelong.log import Record, RunLog, read_log
from lifelong.report import markdown_report
from lifelong.report.view import chance_level

CHECKPOINT_VERSION = 1


def checkpoint_path(run_dir: Path, seed: int) -> Path:
    return run_dir / "checkpoints" / f"seed{seed}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip or pickle stream
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); delete it to restart that seed"
        ) from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION or "learner" not in state:
        raise CheckpointError(f"checkpoint {path} is not a lifelong v{CHECKPOINT_VERSION} checkpoint; delete it to restart that seed")
    return state


@dataclass
class Progress:
    """What the runner reports to a progress display."""

    seed: int
    chunk: int
    n_chunks: int
    batch: int
    n_batches: int
    loss: float | None


#: Inputs beyond this magnitude look unscaled: at the usual learning rates SGD diverges on them.
UNSCALED_ABS = 50.0


def scale_hint(records: Iterator[Record], ds: Dataset | None) -> Iterator[Record]:
    """``records``, with a divergence's message extended when the inputs look unscaled
    (``max |x| >`` :data:`UNSCALED_ABS`): it then names them and suggests ``standardize``."""
    try:
        yield from records
    except TrainingDiverged as e:
        peak = ds.max_abs_input() if ds is not None else 0.0
        if peak <= UNSCALED_ABS:
            raise
        raise TrainingDiverged(
            f"{e}. The inputs look unscaled: features of {ds.name!r} reach |x| = {peak:.4g}. For your own file "
            "set standardize = true in [dataset] (--standardize on the command line); otherwise scale the "
            "features to about unit range"
        ) from e


def iter_seed(
    cfg: RunConfig, ds: Dataset, seed: int, run_dir: Path | None, log: RunLog | None, state: dict | None = None,
    *, built: BuiltRun | None = None,
) -> Iterator[tuple[Record, Stream]]:
    """Run one seed (:func:`lifelong.experiments.runner.iter_seed`), writing records to ``log`` and
    a checkpoint after every chunk; yields each record with the seed's stream. ``built`` is this
    seed's run when the caller has built it already (it is not built twice)."""
    run = build_run(cfg, seed, ds) if built is None else built
    n_chunks = run.n_chunks
    for rec in scale_hint(run_records(run, state=state), ds):
        if log is not None:
            log.write(rec)
        if rec.kind == "chunk_end" and log is not None and run_dir is not None and cfg.checkpoint:
            log.flush()
            save_checkpoint(checkpoint_path(run_dir, seed), {
                "version": CHECKPOINT_VERSION, "seed": seed, "next_chunk": rec.chunk + 1, "step": rec.step,
                "finished": rec.chunk + 1 == n_chunks, "log_offset": log.offset, "learner": run.learner.state_dict(),
            })
        yield rec, run.stream


def execute(
    cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
    on_progress: Callable[[Progress], None] | None = None, reference: str | Path | None = None,
) -> dict[str, Any]:
    """Run every seed of ``cfg`` into ``run_dir`` and write metrics and the report. Returns the metrics."""
    run_dir = Path(run_dir)
    log_path = run_dir / "log.jsonl"
    if resume:
        if not (run_dir / "config.toml").is_file():
            raise CheckpointError(f"{run_dir} is not a run directory (no config.toml); nothing to resume")
        cfg = load_config(run_dir / "config.toml")
    elif log_path.exists() and not force:
        raise ConfigError(f"{run_dir} already holds a run; use --resume to continue it, --force to overwrite, or --name")
    with torch_threads(cfg.threads):  # torch's thread count is restored when the run ends
        return _execute(cfg, run_dir, resume=resume, on_progress=on_progress, reference=reference)


def _execute(cfg: RunConfig, run_dir: Path, *, resume: bool, on_progress: Callable[[Progress], None] | None,
             reference: str | Path | None) -> dict[str, Any]:
    log_path = run_dir / "log.jsonl"
    for kind in ("tensorboard", "mlflow"):  # a missing extra is found before any data is read
        if kind in cfg.track:
            require(kind)
    ds = load_data(cfg)
    # Build the first seed's stream, model and learner before anything is written (the config was
    # checked against the signatures already; this catches what only the builders can see, e.g.
    # a split the dataset cannot make), so a bad request leaves no half-made run directory behind.
    # The resolved protocol goes into config.toml: a rerun from it does the same.
    # That first run is kept and trained: the stream is not built twice.
    first: BuiltRun | None = build_run(cfg, cfg.seeds[0], ds)
    cfg = replace(cfg, train=first.train)
    trackers = open_trackers(cfg.track, name=cfg.name, params=cfg.to_dict())
    try:
        metrics = _execute_seeds(cfg, run_dir, first, ds, resume=resume, on_progress=on_progress,
                                 reference=reference, trackers=trackers)
    except BaseException:
        trackers.close(failed=True)
        raise
    trackers.final(metrics)
    trackers.close()
    return metrics


def _execute_seeds(cfg: RunConfig, run_dir: Path, first: BuiltRun | None, ds: Dataset, *, resume: bool,
                   on_progress: Callable[[Progress], None] | None, reference: str | Path | None,
                   trackers: Trackers) -> dict[str, Any]:
    log_path = run_dir / "log.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in (run_dir / "checkpoints").glob("seed*.pt"):
            old.unlink()
        for old in (run_dir / STE_DIR).glob("*/log.jsonl"):  # experts of an overwritten run
            old.unlink()
        (run_dir / "config.toml").write_text(cfg.to_toml(), encoding="utf-8")

    # Where does each seed stand? Seeds run in order; the log is cut where the last checkpoint was.
    states: dict[int, dict | None] = {}
    offset = 0
    if resume:
        for seed in cfg.seeds:
            path = checkpoint_path(run_dir, seed)
            states[seed] = load_checkpoint(path) if path.exists() else None
            if states[seed] is not None:
                offset = int(states[seed]["log_offset"])
            if states[seed] is None or not states[seed]["finished"]:
                break
    joint = LEARNERS.lookup(cfg.learner_name).data_view == "joint"
    batch_size = loop_config(cfg).batch_size
    t0 = time.perf_counter()
    with RunLog(log_path, truncate_to=offset) as log:
        for seed in cfg.seeds:
            state = states.get(seed)
            if state is not None and state["finished"]:
                continue
            built, first = (first if seed == cfg.seeds[0] else None), None  # the first seed's run, once
            for rec, stream in iter_seed(cfg, ds, seed, run_dir, log, state, built=built):
                if trackers:
                    trackers.record(rec)
                if on_progress is not None and rec.kind == "train":
                    n_chunks = 1 if joint else len(stream.chunks)
                    chunk_len = len(stream.chunks[min(rec.chunk, len(stream.chunks) - 1)])
                    on_progress(Progress(seed, rec.chunk, n_chunks, rec.step, -(-chunk_len // batch_size),
                                         rec.loss_sum / rec.n if rec.n else None))
        log.flush()
    wall_time = time.perf_counter() - t0
    if cfg.scenario.get("ste"):  # L2M single-task experts, stored under <run>/ste/
        run_experts(cfg, run_dir, ds)
    return write_outputs(run_dir, reference=reference, wall_time=wall_time)


def write_outputs(run_dir: str | Path, *, reference: str | Path | None = None, wall_time: float | None = None) -> dict[str, Any]:
    """(Re)compute ``metrics.json`` and ``report.md`` from the log: a pure function of the log."""
    run_dir = Path(run_dir)
    records = read_log(run_dir / "log.jsonl")
    ref_matrix = None
    if reference is not None:
        ref_records = read_log(Path(reference) / "log.jsonl")
        ref_matrix = accuracy_matrix(ref_records, seeds(ref_records)[0])
    per_seed = {s: classic_metrics(records, s, reference=ref_matrix) for s in seeds(records)}
    for s, m in per_seed.items():  # NaN without periodic (train.eval_every) evaluations
        m["stability_gap"] = stability_gap(records, s)[0]
    metrics = {
        "per_seed": {str(s): m for s, m in per_seed.items()},
        "summary": {k: list(v) for k, v in summarize(list(per_seed.values())).items()},
        "accuracy_matrix": {str(s): accuracy_matrix(records, s).tolist() for s in per_seed},
    }
    l2m = l2m_section(run_dir, records)  # L2M lifetime metrics of every seed (with STE data if any)
    if l2m is not None:
        metrics["l2m"] = l2m
    if wall_time is not None:
        metrics["wall_time_s"] = round(wall_time, 3)
    if (run_dir / "config.toml").is_file():  # the resolved protocol (lifelong.experiments.protocol)
        train = load_config(run_dir / "config.toml").train
        metrics["protocol"] = {k: train[k] for k in ("epochs", "batch_size", "lr", "augment") if k in train}
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    chance = chance_level(meta)
    metrics["chance"] = None if math.isnan(chance) else chance
    # an under-trained reference, a learner that never learned: said in the report and on the console
    metrics["warnings"] = run_warnings(records, metrics, meta, chance)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(markdown_report(run_dir, records, metrics), encoding="utf-8")
    return metrics
