"""The one runner: a :class:`~lifelong.experiments.config.RunConfig` and a seed become a stream, a
model and a learner (:func:`build_run`), and :func:`iter_seed` runs the loop over them.

Everything that trains goes through here: ``lifelong run`` (:mod:`lifelong.experiments.run` adds
the run directory, the log file and the checkpoints), the ledger, the L2M single-task experts
(:mod:`lifelong.experiments.experts`), the tune trials (:mod:`lifelong.experiments.tune`), and
``lifelong serve``, whose model and learner come from :func:`build_learner`.

Examples
--------
>>> from lifelong.experiments.config import from_dict
>>> cfg = from_dict({"dataset": {"name": "blobs", "n_per_class": 10, "n_test_per_class": 4},
...                  "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [8]},
...                  "learner": {"name": "er", "mem_size": 20}})
>>> run = build_run(cfg, seed=0)
>>> run.learner.name, run.learner.lr, len(run.stream.chunks), run.n_chunks
('er', 0.05, 2, 2)
>>> [r.kind for r in iter_seed(run)][:2]
['meta', 'eval']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from lifelong.data import Dataset
from lifelong.data.datasets import load_dataset
from lifelong.data.scenarios import Stream, build_stream
from lifelong.device import resolve_device
from lifelong.errors import CheckpointError, ConfigError
from lifelong.experiments.config import TRAIN_TO_LEARNER, RunConfig
from lifelong.experiments.protocol import resolve_protocol, stream_size
from lifelong.learn.loop import LoopConfig, iter_run, training_view
from lifelong.learn.methods import LEARNERS, Learner, hyperparameters, make_learner
from lifelong.learn.nets import build_model, call_factory, check_model, load_factory
from lifelong.log import Record

__all__ = ["BuiltRun", "build_learner", "build_run", "iter_seed", "load_data", "loop_config", "make_model", "make_stream",
           "torch_threads"]


def load_data(cfg: RunConfig) -> Dataset:
    """The dataset of ``cfg``'s ``[dataset]`` section."""
    opts = {k: v for k, v in cfg.dataset.items() if k != "name"}
    return load_dataset(cfg.dataset["name"], **opts)


def make_stream(cfg: RunConfig, ds: Dataset, seed: int) -> Stream:
    """The stream of ``cfg``'s ``[scenario]`` section over ``ds``, for ``seed``."""
    opts = {k: v for k, v in cfg.scenario.items() if k != "name"}
    return build_stream(cfg.scenario["name"], ds, seed=seed, **opts)


def loop_config(cfg: RunConfig) -> LoopConfig:
    """The loop settings of ``cfg``'s ``[train]`` section (the keys the learner does not take)."""
    t = cfg.train
    return LoopConfig(epochs=t.get("epochs", 1), batch_size=t.get("batch_size", 32),
                      eval_every=t.get("eval_every", 0), eval_batch_size=t.get("eval_batch_size", 2048),
                      near_future=t.get("near_future", 0))


def build_learner(
    learner: Mapping[str, Any], model: Mapping[str, Any], *, input_shape: tuple[int, ...], n_classes: int, seed: int,
    train: Mapping[str, Any] | None = None, task_classes: list[tuple[int, ...]] | None = None,
    device: str | torch.device | None = None,
) -> Learner:
    """A fresh model and learner from a ``[learner]`` and a ``[model]`` section (run or serve config).

    Parameters
    ----------
    learner : mapping
        ``name`` and the hyper-parameters (validated by the config; checked again here).
    model : mapping
        ``kind`` (default ``"mlp"``) and the model's options.
    input_shape, n_classes : tuple of int, int
        What the stream (or the served data) looks like.
    seed : int
        Seeds the model's initial weights and the learner's generators.
    train : mapping, optional
        The ``[train]`` section: its ``lr`` and ``momentum`` go to the learner (the one place
        they are set), when the learner takes them.
    task_classes : list of tuple of int, optional
        The classes of each task, only where the scenario exposes task identity.
    device : str or torch.device, optional
        Where the network and the learner's state live (:func:`lifelong.device.resolve_device`);
        default ``train["device"]`` when the section sets it, else the CPU. The weights are
        initialised on the CPU and then moved, so every device starts from the same weights.

    Returns
    -------
    Learner
        The same arguments always give the same initial state.
    """
    if device is None:
        device = train.get("device", "cpu") if train is not None else "cpu"
    net = make_model(model, input_shape=input_shape, n_classes=n_classes, seed=seed).to(resolve_device(device))
    name = learner["name"]
    hp = {k: v for k, v in learner.items() if k != "name"}
    cls = LEARNERS.lookup(name)
    check_model(net, input_shape, n_classes, needs_features=getattr(cls, "needs_features", False),
                who=f"the model for learner {name!r}")
    accepted = hyperparameters(cls)
    for key in TRAIN_TO_LEARNER:
        if train is not None and key in train and key in accepted:
            hp[key] = train[key]
    augment = (train or {}).get("augment", "none")
    if augment != "none":
        if "augment" not in accepted:
            raise ConfigError(f"[train] augment = {augment!r}, but learner {name!r} takes no augment; remove it")
        if len(input_shape) != 3:
            raise ConfigError(f"[train] augment = {augment!r} needs image inputs (C, H, W), but the stream's inputs "
                              f"have shape {tuple(input_shape)}; remove it, or load the images unflattened")
    out = make_learner(name, net, seed=seed, task_classes=task_classes, **hp)
    precision = (train or {}).get("precision", "fp32")
    if precision != "fp32":
        out.set_precision(precision)  # mixed precision in the step (refused where it does not apply)
    if (train or {}).get("compile", False):
        out.set_compile(True)  # torch.compile of the step's forward pass (refused where it cannot run)
    return out


def make_model(model: Mapping[str, Any], *, input_shape: tuple[int, ...], n_classes: int, seed: int) -> torch.nn.Module:
    """The network of a ``[model]`` section: a built-in one by ``kind`` (default ``"mlp"``) or a
    user's ``factory`` (:func:`lifelong.learn.nets.call_factory`), initialised from ``seed``."""
    if "factory" in model:
        options = {k: v for k, v in model.items() if k != "factory"}
        return call_factory(load_factory(model["factory"]), input_shape, n_classes, seed=seed, **options)
    model_opts = {k: v for k, v in model.items() if k not in ("kind", "name")}
    return build_model(model.get("kind", model.get("name", "mlp")), input_shape, n_classes, seed=seed, **model_opts)


@dataclass
class BuiltRun:
    """One seed of a run, ready to go: the stream, the learner (model inside) and the loop settings."""

    stream: Stream
    learner: Learner
    loop: LoopConfig
    seed: int
    dataset: str  # the dataset's name, for the log's meta record
    train: dict[str, Any]  # the resolved [train] section (lifelong.experiments.protocol)

    @property
    def n_chunks(self) -> int:
        """The number of chunks the learner trains on (1 for a joint learner)."""
        return len(training_view(self.stream, self.learner.data_view))


def build_run(cfg: RunConfig, seed: int, ds: Dataset | None = None, *, stream: Stream | None = None) -> BuiltRun:
    """Build stream, model and learner of ``cfg`` for ``seed``.

    Parameters
    ----------
    cfg : RunConfig
    seed : int
    ds : Dataset, optional
        The loaded dataset (loaded from ``cfg`` when omitted and no ``stream`` is given).
    stream : Stream, optional
        A stream to use instead of ``cfg``'s scenario (a single-task expert's, a tune trial's
        first chunks); the learner is built for it.
    """
    if stream is None:
        ds = load_data(cfg) if ds is None else ds
        stream = make_stream(cfg, ds, seed)
    dataset = ds.name if ds is not None else str(stream.info.get("dataset", cfg.dataset["name"]))
    cfg = resolve_protocol(cfg, dataset, stream_size(stream, cfg.learner_name))  # [train] keys the config left out (idempotent)
    learner = build_learner(cfg.learner, cfg.model, input_shape=stream.input_shape, n_classes=stream.n_classes,
                            seed=seed, train=cfg.train, task_classes=stream.task_classes,
                            device=cfg.train.get("device", "auto"))
    return BuiltRun(stream, learner, loop_config(cfg), seed, dataset, dict(cfg.train))


def iter_seed(run: BuiltRun, *, state: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> Iterator[Record]:
    """Run the loop over a built run and yield its records.

    Parameters
    ----------
    run : BuiltRun
        From :func:`build_run`.
    state : mapping, optional
        A checkpoint of this run (``learner``, ``next_chunk``, ``step``): the learner's state is
        restored and the records continue exactly as an uninterrupted run's would.
    meta : mapping, optional
        Extra fields of the meta record, after ``dataset`` and ``seed``.
    """
    start_chunk = start_step = 0
    if state is not None:
        try:
            run.learner.load_state_dict(state["learner"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint for seed {run.seed} does not match this run's config ({e})") from None
        start_chunk, start_step = int(state["next_chunk"]), int(state["step"])
    yield from iter_run(run.stream, run.learner, run.loop, seed=run.seed, start_chunk=start_chunk,
                        start_step=start_step, meta={"dataset": run.dataset, "seed": run.seed,
                                                     "device": str(getattr(run.learner, "device", "cpu")), **(meta or {})})


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0 leaves torch's setting), then restore it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
