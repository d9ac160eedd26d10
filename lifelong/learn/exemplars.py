"""Shared plumbing of the class-incremental exemplar methods (LUCIR, BiC, WA).

:class:`ExemplarLearner` keeps iCaRL's exemplar memory (herding, ``m = K // t`` exemplars per
class, :class:`ExemplarMemory`, shared with :mod:`lifelong.learn.methods.icarl`), a network frozen at the last
boundary (the teacher) and the mask of the classes seen before it. Each step trains on the
incoming batch joined by a batch of exemplars; the loss is the method's :meth:`loss`.
Subclasses hook into the boundary through :meth:`after_training` (before herding: WA's weight
aligning) and :meth:`after_boundary` (after herding and the teacher: BiC's bias layer).

iCaRL (:mod:`lifelong.learn.methods.icarl`) uses the herding and the exemplar memory defined here.
With every method's defining term off, this is plain cross-entropy fine-tuning on new data plus
herded exemplars ("iCaRL-style fine-tuning with the same exemplars"), the baseline of the three
papers' ablations.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory, TensorMemory
from lifelong.seeding import derive_seed


def herding(features: Tensor, m: int) -> Tensor:
    """Indices of ``min(m, n)`` rows of ``features`` (n, d), chosen by herding, in selection order.

    The k-th choice minimises ``‖μ − (φ(x) + Σ_{j<k} φ(p_j)) / k‖`` over the rows not yet chosen,
    with ``μ`` the mean row (iCaRL's Algorithm 4).

    Examples
    --------
    >>> herding(torch.tensor([[0.0], [1.0], [3.0]]), 2)  # mean 4/3: 1.0 first, then 3.0 (mean 2)
    tensor([1, 2])
    """
    n = features.shape[0]
    mu = features.mean(0)  # (d,)
    chosen = torch.zeros(n, dtype=torch.bool, device=features.device)
    running = torch.zeros_like(mu)  # sum of the chosen features
    order = []
    for k in range(1, min(m, n) + 1):
        dist = (mu - (running + features) / k).norm(dim=1)  # (n,)
        dist[chosen] = float("inf")
        i = int(dist.argmin())
        order.append(i)
        chosen[i] = True
        running += features[i]
    return torch.tensor(order, dtype=torch.int64)


class ExemplarMemory(TensorMemory):
    """Per-class exemplar sets in one preallocated buffer of ``capacity`` slots.

    Invariant: slots ``0 .. size-1`` are filled and, within each class, are in priority (herding)
    order, so cutting a class to ``m`` exemplars keeps its first ``m`` slots.
    """

    def _keep(self, keep: Tensor) -> None:
        """Compact the filled slots to those where ``keep`` (size,) is true, preserving order."""
        kept = self.get(keep.nonzero().flatten())  # advanced indexing copies the rows
        k = len(kept)
        self._write(torch.arange(k), torch.arange(k), kept, {})
        self.size = k

    def reduce(self, m: int) -> None:
        """Keep the first ``m`` exemplars of every class."""
        if self.size == 0:
            return
        y = self.y[: self.size]
        rank = F.one_hot(y).cumsum(0).gather(1, y[:, None]).squeeze(1) - 1  # position within its class
        self._keep(rank < m)

    def replace_class(self, c: int, exemplars: Batch) -> None:
        """Make ``exemplars`` (in priority order) the whole exemplar set of class ``c``."""
        if self.size:
            self._keep(self.y[: self.size] != c)
        if len(exemplars) == 0:
            return
        self._allocate(exemplars, {})
        n = len(exemplars)
        if self.size + n > self.capacity:
            raise ValueError(f"exemplar memory overflow: {self.size} + {n} > {self.capacity}")
        self._write(torch.arange(self.size, self.size + n), torch.arange(n), exemplars, {})
        self.size += n

    def of_class(self, c: int) -> Batch:
        return self.get((self.y[: self.size] == c).nonzero().flatten())


def _cat(a: Batch, b: Batch) -> Batch:
    task = torch.cat([a.task, b.task]) if a.task is not None and b.task is not None else None
    return Batch(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), task)


def _take(batch: Batch, idx: Tensor) -> Batch:
    return Batch(batch.x[idx], batch.y[idx], batch.task[idx] if batch.task is not None else None)


def frozen_copy(model: nn.Module, weights: dict | None = None) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    if weights is not None:
        teacher.load_state_dict(weights)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class ExemplarLearner(Learner):
    """Herded exemplars, a teacher frozen at each boundary and the old-class mask; no name (not
    registered)."""

    needs_features = True
    needs_boundaries = True
    needs_new_classes = True
    new_classes_reason = "its terms separate old from new classes; after the first boundary every class is old"
    composable = False

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None,
                 chunk_buffer: int = 2000, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.replay_batch, self.chunk_buffer = mem_size, replay_batch, chunk_buffer
        self.exemplars = ExemplarMemory(self.exemplar_capacity(), device=self.device)
        self.chunk_samples = ReservoirMemory(chunk_buffer, seed=self.derived("chunk-buffer/0"), device=self.device)
        self.teacher: nn.Module | None = None
        self.old_classes = torch.zeros(self.n_classes, dtype=torch.bool, device=self.device)

    def derived(self, what: str) -> int:
        return derive_seed(self.seed, what)

    def exemplar_capacity(self) -> int:
        """Slots of the herded (training) exemplar memory; BiC keeps some for validation."""
        return self.mem_size

    # -- the step -------------------------------------------------------------------------------
    def logits(self, x: Tensor) -> Tensor:
        """The classifier's scores on ``x`` during training (LUCIR: the cosine head)."""
        return self.model(x)

    def active(self, batch: Batch) -> Tensor:
        """(C,) bool: the classes seen so far, this batch's included."""
        active = self.seen_classes.clone()
        active[batch.y] = True
        return active

    def seen_ce(self, logits: Tensor, y: Tensor, active: Tensor, task: Tensor | None) -> Tensor:
        """Cross-entropy over the seen classes only (unseen logits left out of the softmax)."""
        allowed = active.expand_as(logits)
        if task is not None and self._task_mask is not None:
            allowed = allowed & self._task_mask[task]
        return F.cross_entropy(logits.masked_fill(~allowed, float("-inf")), y)

    def loss(self, train: Batch, logits: Tensor, active: Tensor, n_incoming: int) -> Tensor:
        """The method's objective on the joined batch ``train`` (incoming rows first)."""
        return self.seen_ce(logits, train.y, active, train.task)

    def after_step(self) -> None:
        """Called after every SGD step (WA's weight clipping)."""

    def training_mask(self, batch: Batch) -> Tensor | None:
        """(B,) bool: the incoming samples trained on (None: all; BiC holds some out)."""
        return None

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        self.start_step()
        keep = self.training_mask(batch)
        own = batch if keep is None else _take(batch, keep.nonzero().flatten().to(batch.y.device))
        joined, rows = batch, keep
        if len(self.exemplars):
            mb = self.exemplars.sample(self.replay_batch or max(len(batch), 1), self.generator)
            joined = _cat(batch, mb)
            if keep is not None:
                rows = torch.cat([keep, torch.ones(len(mb), dtype=torch.bool)])
        out = self.logits(joined.x)  # (B + b, C): the incoming batch first
        logits = out[: len(batch)]
        if rows is not None:
            idx = rows.nonzero().flatten().to(out.device)
            train, out = _take(joined, idx), out[idx]
        else:
            train = joined
        if len(train):
            self.step(self.loss(train, out, self.active(batch), len(own)))
            self.after_step()
        if len(own):
            self.chunk_samples.add(own)
        self.record_seen(batch)
        return self.stats(logits, batch, self.ce(logits.detach(), batch.y, batch.task))

    def start_step(self) -> None:
        """Called at the start of every step (BiC drops its bias layer once training resumes)."""

    # -- the boundary ---------------------------------------------------------------------------
    @torch.no_grad()
    def normalised_features(self, x: Tensor) -> Tensor:
        was_training = self.model.training
        self.model.eval()
        f = F.normalize(self.model.features(x), dim=1)
        self.model.train(was_training)
        return f

    def after_training(self) -> None:
        """Boundary work on the trained network, before herding (WA's aligning)."""

    def after_boundary(self) -> None:
        """Boundary work once the exemplars, teacher and old classes are updated (BiC's bias layer)."""

    def herd(self) -> None:
        if not len(self.chunk_samples):
            return
        m = self.exemplars.capacity // int(self.seen_classes.sum())
        self.exemplars.reduce(m)
        chunk = self.chunk_samples.all()
        for c in chunk.y.unique().tolist():
            candidates = _take(chunk, (chunk.y == c).nonzero().flatten())
            if len(self.exemplars):  # a recurring class: its exemplars compete again
                candidates = _cat(candidates, self.exemplars.of_class(c))
            order = herding(self.normalised_features(candidates.x), m)
            self.exemplars.replace_class(c, _take(candidates, order))

    def end_chunk(self) -> None:
        self.after_training()
        self.herd()
        self.teacher = frozen_copy(self.model)
        self.old_classes = self.seen_classes.clone()
        seed = int(torch.randint(2**62, (1,), generator=self.generator))  # reproducible from the state
        self.chunk_samples = ReservoirMemory(self.chunk_buffer, seed=seed, device=self.device)
        self.after_boundary()

    # -- state ----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {
            "exemplars": self.exemplars.state_dict(),
            "chunk_samples": self.chunk_samples.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "old_classes": self.old_classes.clone(),
        }

    def load_extra_state(self, state: dict) -> None:
        self.exemplars.load_state_dict(state["exemplars"])
        self.chunk_samples.load_state_dict(state["chunk_samples"])
        self.teacher = None if state["teacher"] is None else frozen_copy(self.model, state["teacher"])
        self.old_classes = state["old_classes"].clone()
