"""The training and evaluation loop: :func:`iter_run` yields the :class:`~lifelong.log.Record`s of
one seed's run. Progress bars, log writers and checkpointing consume the records; they live
outside the loop.

Order of records: ``meta``; ``eval`` of the untrained network (chunk -1, for FWT); then per chunk
``train`` records (one per batch, periodic ``eval``s every ``eval_every`` batches), the learner's
``end_chunk`` (unless the stream is task-free), one boundary ``eval`` per evaluation set (row i of
the accuracy matrix), and ``chunk_end``.

Sleep chunks (``stream.info["sleep_chunks"]``, from the L2M lifetimes) are consolidation blocks:
each batch is replaced by one step of the learner's ``consolidate`` (the
:class:`~lifelong.learn.base.Consolidator` capability), their ``train`` records carry
``extra = {"subtype": "sleep", "source": "memory" | "rehearsal"}``, and ``end_chunk`` is not called
after them (no new task ended).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lifelong.data import Batch, Chunk, EvalSet
from lifelong.errors import ConfigError
from lifelong.data.scenarios import Stream
from lifelong.learn.base import Consolidator, LearnerProtocol, StepStats
from lifelong.log import Record
from lifelong.seeding import derive_seed


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 1
    batch_size: int = 32
    eval_every: int = 0  # evaluate every N training batches inside a chunk (0 = boundaries only)
    eval_batch_size: int = 2048
    # > 0: after each update, score the batch this many steps ahead in the chunk (near-future
    # online accuracy, Hammoud et al. ICCV 2023); counts go to the train record's extra.
    near_future: int = 0


def training_view(stream: Stream, data_view: str) -> list[Chunk]:
    """The chunks a learner trains on: the stream itself, cumulative unions, or one joint chunk."""
    if data_view == "stream":
        return stream.chunks
    if data_view not in ("cumulative", "joint"):
        raise ValueError(f"unknown data view {data_view!r}")
    out, xs, ys, ts, classes = [], [], [], [], []
    for c in stream.chunks:
        xs.append(c.x), ys.append(c.y), ts.append(c.task), classes.extend(c.classes)
        if data_view == "cumulative" or c is stream.chunks[-1]:
            task = torch.cat(ts) if ts[0] is not None else None
            name = f"{data_view}{len(out)}_0"
            out.append(Chunk(len(out), torch.cat(xs), torch.cat(ys), tuple(dict.fromkeys(classes)), task, name))
    return out


def learner_device(learner: LearnerProtocol) -> torch.device | None:
    """The device a learner's state lives on (its ``device`` attribute); ``None`` when it has none
    (a plugin learner that keeps to the CPU): batches are then passed as the stream holds them."""
    device = getattr(learner, "device", None)
    return torch.device(device) if device is not None else None


def to_device(batch: Batch, device: torch.device | None) -> Batch:
    """``batch`` on ``device`` (the same object when it is already there, or ``device`` is None)."""
    if device is None or batch.x.device == device:
        return batch
    task = batch.task.to(device) if batch.task is not None else None
    return Batch(batch.x.to(device), batch.y.to(device), task, {k: v.to(device) for k, v in batch.extras.items()})


@torch.no_grad()
def evaluate(learner: LearnerProtocol, ev: EvalSet, batch_size: int) -> tuple[int, int, float]:
    """Raw counts ``(n, n_correct, loss_sum)`` of the learner's predictions on one evaluation set.

    The set stays where it is (the CPU); each evaluation batch is moved to the learner's device
    once, so a set larger than the device's memory streams through."""
    n_correct, loss_sum = 0, 0.0
    device = learner_device(learner)
    for s in range(0, len(ev), batch_size):
        y = ev.y[s : s + batch_size]
        task = ev.task[s : s + batch_size] if ev.task is not None else None
        if device is not None:
            y, task = y.to(device), (task.to(device) if task is not None else None)
        x = ev.x[s : s + batch_size]
        logits = learner.predict(x.to(device) if device is not None else x, task)
        n_correct += int((logits.argmax(1) == y).sum())
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
    return len(ev), n_correct, loss_sum


@torch.no_grad()
def near_future_counts(learner: LearnerProtocol, batches: list[Batch], index: int) -> dict[str, int]:
    """``{"nf_n", "nf_correct"}`` of the learner's predictions on ``batches[index]`` (no training);
    empty past the end of the chunk."""
    if index >= len(batches):
        return {}
    b = to_device(batches[index], learner_device(learner))
    n_correct = int((learner.predict(b.x, b.task).argmax(1) == b.y).sum())
    return {"nf_n": len(b), "nf_correct": n_correct}


def sleep_step(learner: LearnerProtocol, batch: Batch, generator: torch.Generator) -> tuple[StepStats, dict]:
    """One step of a sleep block: ``learner.consolidate(batch, generator)``, and the record's extra.

    ``generator`` is the loop's shuffle generator of the chunk: replay draws come from it, not from
    the learner's own stream.
    """
    if not isinstance(learner, Consolidator):
        raise ConfigError(f"sleep blocks need a learner with a consolidate(batch, generator) method; "
                          f"{type(learner).__name__} has none")
    s = learner.consolidate(batch, generator)
    return s, {"subtype": "sleep", "source": s.source}


def _evaluate_all(learner: LearnerProtocol, stream: Stream, cfg: LoopConfig, *, seed: int, chunk: int, step: int, boundary: bool) -> Iterator[Record]:
    for ev in stream.eval_sets:
        n, n_correct, loss_sum = evaluate(learner, ev, cfg.eval_batch_size)
        yield Record("eval", seed=seed, chunk=chunk, task=ev.index, step=step, n=n, n_correct=n_correct,
                     loss_sum=loss_sum, boundary=boundary)


#: Scenarios whose builder takes ``task_free`` (and can announce its boundaries with ``task_free = false``).
_TASK_FREE_OPTIONAL = ("blurry", "concept_drift", "river_drift")


def check_boundaries(stream: Stream, learner: LearnerProtocol) -> None:
    """Refuse a learner that needs chunk boundaries (``needs_boundaries``) on a task-free stream,
    where ``end_chunk`` is never called and it would silently run as fine-tuning."""
    if not (stream.task_free and getattr(learner, "needs_boundaries", False)):
        return
    name = getattr(learner, "name", type(learner).__name__)
    fix = (f"set task_free = false in [scenario] (the {stream.name!r} scenario offers it)"
           if stream.name in _TASK_FREE_OPTIONAL else
           f"use a scenario with boundaries (class_incremental, task_incremental, domain_incremental), or one "
           f"that offers task_free = false in [scenario] ({', '.join(_TASK_FREE_OPTIONAL)})")
    raise ConfigError(
        f"learner {name!r} needs chunk boundaries (its end_chunk does the method's work), but scenario "
        f"{stream.name!r} is task-free: end_chunk would never be called and {name!r} would run as plain "
        f"fine-tuning. Fix: {fix}; or pick a task-free learner such as er, der, derpp, er_ace or cls_er."
    )


def check_new_classes(stream: Stream, learner: LearnerProtocol) -> None:
    """Refuse a learner that declares ``needs_new_classes`` (its method assumes each chunk brings
    classes not seen before: iCaRL, the frozen-feature heads) on a stream whose chunks all hold the
    same classes (domain-incremental), where it degenerates. The learner's ``new_classes_reason``
    says why, in its own terms."""
    if not getattr(learner, "needs_new_classes", False) or len(stream.chunks) < 2:
        return
    first = set(stream.chunks[0].classes)
    if not all(set(c.classes) == first for c in stream.chunks):
        return
    name = getattr(learner, "name", type(learner).__name__)
    reason = getattr(learner, "new_classes_reason", "") or "its method is built for chunks that bring new classes"
    raise ConfigError(
        f"learner {name!r} assumes every chunk brings new classes, but in scenario {stream.name!r} every chunk "
        f"holds the same classes (a domain-incremental stream): {reason}. Fix: use a class- or task-incremental "
        f"scenario, or a learner for domain shifts such as er, derpp, cls_er, si or ewc."
    )


def labelled_only(batch: Batch, learner: LearnerProtocol) -> Batch | None:
    """The batch a learner trains on in a semi-supervised stream (``label_fraction < 1``: unlabelled
    samples have ``y = -1``): all of it for a learner that declares ``learns_from_unlabelled =
    True``, else only its labelled samples (None when it has none)."""
    if getattr(learner, "learns_from_unlabelled", False):
        return batch
    keep = batch.y >= 0
    if bool(keep.all()):
        return batch
    if not bool(keep.any()):
        return None
    return Batch(batch.x[keep], batch.y[keep], batch.task[keep] if batch.task is not None else None)


def iter_run(
    stream: Stream, learner: LearnerProtocol, cfg: LoopConfig, *, seed: int,
    start_chunk: int = 0, start_step: int = 0, meta: dict | None = None,
) -> Iterator[Record]:
    """Run ``learner`` over ``stream`` and yield its records.

    Raises :class:`~lifelong.errors.ConfigError` before any record when the learner needs chunk
    boundaries and the stream is task-free (:func:`check_boundaries`).

    ``start_chunk``/``start_step`` continue a run whose state was restored from a checkpoint taken
    after chunk ``start_chunk - 1``; the records then continue exactly as in an uninterrupted run.
    """
    check_boundaries(stream, learner)
    check_new_classes(stream, learner)
    chunks = training_view(stream, learner.data_view)
    sleeping = set(stream.info.get("sleep_chunks", ())) if learner.data_view == "stream" else set()
    semi = stream.info.get("label_fraction", 1.0) < 1.0  # some training labels are hidden (y = -1)
    step = start_step
    device = learner_device(learner)  # each batch is moved there once, as it is drawn
    if start_chunk == 0:
        yield Record("meta", seed=seed, extra={**stream.describe(), "learner": learner.name,
                                              "data_view": learner.data_view, **(meta or {})})
        yield from _evaluate_all(learner, stream, cfg, seed=seed, chunk=-1, step=0, boundary=True)
    for chunk in chunks[start_chunk:]:
        for epoch in range(cfg.epochs):
            # Shuffling depends only on (seed, chunk, epoch), so a resumed run reshuffles identically.
            g = torch.Generator().manual_seed(derive_seed(seed, f"shuffle/{chunk.index}/{epoch}"))
            # Lazy: one batch at a time (the permutation is drawn at the first one), except when the
            # near-future accuracy must look ahead.
            batches = chunk.batches(cfg.batch_size, g)
            if cfg.near_future:
                batches = list(batches)
            for i, batch in enumerate(batches):
                if semi and (batch := labelled_only(batch, learner)) is None:
                    continue  # no labelled sample, and the learner uses labelled ones only
                batch = to_device(batch, device)
                if chunk.index in sleeping:
                    s, extra = sleep_step(learner, batch, g)
                    step += 1
                else:
                    s = learner.observe(batch)
                    step += 1
                    extra = near_future_counts(learner, batches, i + cfg.near_future) if cfg.near_future else {}
                yield Record("train", seed=seed, chunk=chunk.index, epoch=epoch, step=step,
                             n=s.n, n_correct=s.n_correct, loss_sum=s.loss_sum, extra=extra)
                if cfg.eval_every and step % cfg.eval_every == 0:
                    yield from _evaluate_all(learner, stream, cfg, seed=seed, chunk=chunk.index, step=step, boundary=False)
        if not stream.task_free and chunk.index not in sleeping:
            learner.end_chunk()
        yield from _evaluate_all(learner, stream, cfg, seed=seed, chunk=chunk.index, step=step, boundary=True)
        yield Record("chunk_end", seed=seed, chunk=chunk.index, step=step)
