"""Experiment tracking: mirror a run's records and final metrics to TensorBoard and MLflow.

Off by default. ``[track] tensorboard = "DIR"`` (``--tensorboard DIR``) writes event files under
``DIR/<run name>/seed<s>/``; ``[track] mlflow = "URI"`` (``--mlflow URI``) logs one MLflow run per
seed, named ``<run name>/seed<s>``, into the experiment ``[track] experiment`` (default: the run
name), at a tracking URI such as ``sqlite:///mlflow.db`` (or a file store, or a server).

What is logged, with the record's global ``step`` as the step:

- ``train/loss`` and ``train/accuracy``: each training batch (mean loss and accuracy on the incoming
  batch before the update, as in the log);
- ``eval/task<k>/accuracy`` (and ``.../loss``): each boundary evaluation of evaluation set ``k``;
  periodic evaluations inside a chunk (``[train] eval_every``) go to ``eval_every/task<k>/...``;
- ``final/<metric>``: the seed's classic metrics (``acc``, ``bwt``, ``forgetting``, ...) from
  ``metrics.json``, once the run ends.

MLflow runs also get the flattened config as params (``learner.name``, ``train.lr``, ...) and the
seed as a tag. Trackers only read records: the run log is byte-identical with tracking on or off.
A resumed run logs from where it resumed (a new TensorBoard event file, a new MLflow run).

Both libraries are optional extras, imported only when a tracker is opened; a missing one is a
:class:`~lifelong.errors.ConfigError` that names the pip command.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.log import Record

__all__ = ["MLflowTracker", "TensorBoardTracker", "Trackers", "open_trackers", "require"]

#: The import each tracker needs, and its extra.
EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
#: MLflow's log_batch takes at most this many metrics per call.
MLFLOW_BATCH = 1000


def require(kind: str) -> Any:
    """Import the library of tracker ``kind`` (``"tensorboard"`` or ``"mlflow"``).

    Raises
    ------
    ConfigError
        If it is not installed; the message names the extra to install.
    """
    module, extra = EXTRAS[kind]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"[track] {kind} (--{kind}) needs the {extra} extra, which is not installed: "
                          f"pip install 'lifelong[{extra}]'") from None


def _scalars(rec: Record) -> tuple[str, dict[str, float]] | None:
    """``(prefix, {name: value})`` of the scalars a record contributes, or ``None``."""
    if rec.kind == "train" and rec.n:
        return "train", {"loss": rec.loss_sum / rec.n, "accuracy": rec.n_correct / rec.n}
    if rec.kind == "eval" and rec.n:
        prefix = f"{'eval' if rec.boundary else 'eval_every'}/task{rec.task}"
        out = {"accuracy": rec.n_correct / rec.n}
        if rec.loss_sum is not None:
            out["loss"] = rec.loss_sum / rec.n
        return prefix, out
    return None


def _finals(metrics: dict[str, Any], seed: int) -> dict[str, float]:
    """The finite scalar metrics of ``seed`` in a ``metrics.json`` document."""
    per_seed = metrics.get("per_seed", {}).get(str(seed), {})
    out = {}
    for k, v in per_seed.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = str(v)[:500]
    return out


class TensorBoardTracker:
    """Event files under ``<log_dir>/<name>/seed<s>/``, one writer per seed."""

    def __init__(self, log_dir: str | Path, name: str) -> None:
        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self._writer_cls = SummaryWriter
        self.root = Path(log_dir) / name
        self._writers: dict[int, Any] = {}
        self._last_step: dict[int, int] = {}

    def _writer(self, seed: int) -> Any:
        if seed not in self._writers:
            self._writers[seed] = self._writer_cls(log_dir=str(self.root / f"seed{seed}"))
        return self._writers[seed]

    def record(self, rec: Record) -> None:
        scalars = _scalars(rec)
        if scalars is None:
            return
        prefix, values = scalars
        w = self._writer(rec.seed)
        step = int(rec.step or 0)
        self._last_step[rec.seed] = max(step, self._last_step.get(rec.seed, 0))
        for k, v in values.items():
            w.add_scalar(f"{prefix}/{k}", v, step)

    def final(self, metrics: dict[str, Any]) -> None:
        for seed in (int(s) for s in metrics.get("per_seed", {})):
            w = self._writer(seed)
            for k, v in _finals(metrics, seed).items():
                w.add_scalar(f"final/{k}", v, self._last_step.get(seed, 0))

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


class MLflowTracker:
    """One MLflow run per seed, metrics sent in batches (at chunk ends and at the end)."""

    def __init__(self, uri: str, experiment: str, params: dict[str, Any], name: str) -> None:
        mlflow = require("mlflow")
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._Metric, self._Param, self._Tag, self._error = Metric, Param, RunTag, MlflowException
        self.name = name
        self.params = _flatten(params)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        except MlflowException as e:
            raise ConfigError(f"[track] mlflow = {uri!r}: MLflow cannot use this store: {e.message}") from None
        self._mlflow = mlflow
        self._runs: dict[int, str] = {}
        self._pending: dict[int, list[Any]] = {}
        self._last_step: dict[int, int] = {}

    def run_id(self, seed: int) -> str:
        """The MLflow run id of ``seed`` (created on first use, with the config as params)."""
        if seed not in self._runs:
            run = self.client.create_run(self.experiment_id, run_name=f"{self.name}/seed{seed}",
                                         tags={"lifelong.run": self.name, "lifelong.seed": str(seed)})
            self._runs[seed] = run.info.run_id
            items = [self._Param(k, v) for k, v in self.params.items()]
            for i in range(0, len(items), 100):  # log_batch takes at most 100 params
                self.client.log_batch(run.info.run_id, params=items[i:i + 100])
            self._pending[seed] = []
        return self._runs[seed]

    def _add(self, seed: int, key: str, value: float, step: int) -> None:
        self.run_id(seed)
        self._pending[seed].append(self._Metric(key, float(value), 0, step))
        if len(self._pending[seed]) >= MLFLOW_BATCH:
            self._flush(seed)

    def _flush(self, seed: int) -> None:
        pending, self._pending[seed] = self._pending.get(seed, []), []
        for i in range(0, len(pending), MLFLOW_BATCH):
            self.client.log_batch(self._runs[seed], metrics=pending[i:i + MLFLOW_BATCH])

    def record(self, rec: Record) -> None:
        scalars = _scalars(rec)
        if scalars is not None:
            prefix, values = scalars
            step = int(rec.step or 0)
            self._last_step[rec.seed] = max(step, self._last_step.get(rec.seed, 0))
            for k, v in values.items():
                self._add(rec.seed, f"{prefix}/{k}", v, step)
        elif rec.kind == "chunk_end" and rec.seed in self._runs:
            self._flush(rec.seed)

    def final(self, metrics: dict[str, Any]) -> None:
        for seed in (int(s) for s in metrics.get("per_seed", {})):
            for k, v in _finals(metrics, seed).items():
                self._add(seed, f"final/{k}", v, self._last_step.get(seed, 0))

    def close(self, status: str = "FINISHED") -> None:
        for seed, run_id in self._runs.items():
            self._flush(seed)
            self.client.set_terminated(run_id, status=status)
        self._runs.clear()


class Trackers:
    """The trackers of a run, fed one record at a time; a no-op when the config tracks nothing."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def record(self, rec: Record) -> None:
        for t in self.trackers:
            t.record(rec)

    def final(self, metrics: dict[str, Any]) -> None:
        for t in self.trackers:
            t.final(metrics)

    def close(self, *, failed: bool = False) -> None:
        for t in self.trackers:
            if isinstance(t, MLflowTracker):
                t.close("FAILED" if failed else "FINISHED")
            else:
                t.close()


def open_trackers(track: dict[str, str], *, name: str, params: dict[str, Any] | None = None) -> Trackers:
    """The trackers a ``[track]`` table asks for (none when it is empty).

    Parameters
    ----------
    track : dict
        ``tensorboard`` (a directory), ``mlflow`` (a tracking URI), ``experiment`` (MLflow
        experiment name, default ``name``).
    name : str
        The run's name: the TensorBoard subdirectory and the MLflow run names.
    params : dict, optional
        The run's config, logged as MLflow params.

    Examples
    --------
    >>> bool(open_trackers({}, name="run"))
    False
    """
    out: list[Any] = []
    for kind in ("tensorboard", "mlflow"):  # both checked before either opens anything
        if kind in track:
            require(kind)
    if "tensorboard" in track:
        out.append(TensorBoardTracker(track["tensorboard"], name))
    if "mlflow" in track:
        out.append(MLflowTracker(track["mlflow"], track.get("experiment", name), params or {}, name))
    return Trackers(out)
