"""Heads on a frozen backbone: the shared part of the frozen-feature methods (NCM, SLDA).

The network trains as plain fine-tuning (cross-entropy SGD) on the first chunk only. At the first
``end_chunk`` its parameters are frozen for good, and from then on the classifier is a head fitted
in closed form, in a streaming fashion, on the frozen features ``h(x)`` of the network's body
(:meth:`~lifelong.learn.nets.Net.features`): each incoming batch updates the head's class
statistics and nothing else; there is no gradient step after the first chunk.

With ``adapt=False`` the network is taken as it is given (a pre-trained backbone, or, in a run
built from a config, the freshly initialised network): it is frozen at once, and the head takes
every batch from the first one; nothing is fine-tuned, and the first boundary has nothing to do.

The first chunk's samples are seen while the backbone still moves, so they are kept in a reservoir
(``first_buffer`` samples) and their statistics are computed once, with the frozen backbone, at the
boundary. Before that boundary the learner predicts with the network's own head.

A subclass defines the head: :meth:`FrozenFeatureHead.fit` (add a batch's features to the class
statistics), :meth:`FrozenFeatureHead.scores` (``(B, n_classes)`` scores from features) and the
statistics' state (:meth:`head_state`, :meth:`load_head_state`).

Such a head refuses domain-incremental streams (``needs_new_classes``, checked by
:func:`lifelong.learn.loop.check_new_classes`): a backbone frozen on the first domain maps a new
domain (a pixel permutation) to features that carry little of its class, and class statistics
pooled over domains mix unrelated clusters.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, SleepStats, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.seeding import derive_seed

#: How far below a sample's lowest seen-class score a class without statistics is put: it ranks
#: last, its softmax probability is below e^-100, and the scores stay finite.
UNSEEN_GAP = 100.0


def fill_unseen(scores: Tensor, has: Tensor) -> Tensor:
    """``scores`` (B, C) with the columns where ``has`` (C,) is False set to each row's lowest seen
    score minus :data:`UNSEEN_GAP`.

    Examples
    --------
    >>> fill_unseen(torch.tensor([[1.0, 5.0, 0.0]]), torch.tensor([True, True, False]))
    tensor([[  1.,   5., -99.]])
    """
    if bool(has.all()) or not bool(has.any()):
        return scores
    floor = scores[:, has].min(1, keepdim=True).values - UNSEEN_GAP
    return torch.where(has, scores, floor)


class FrozenFeatureHead(Learner):
    """Fine-tuning on the first chunk, then a closed-form head on the frozen features."""

    needs_boundaries = True  # with ``adapt``, the first boundary freezes the backbone and fits the head
    needs_new_classes = True  # the loop refuses domain-incremental streams
    new_classes_reason = ("its backbone is frozen after the first chunk, so a new domain's inputs go through "
                          "features learned on the first domain alone, and class statistics pooled over domains "
                          "mix unrelated clusters")
    composable = False  # after the first chunk there is no loss to add terms to

    #: True when the head itself does work at every boundary (RanPAC's choice of ``λ``), so that the
    #: learner needs boundaries even without the first chunk's adaptation.
    head_needs_boundaries: bool = False

    def __init__(self, model: nn.Module, *, first_buffer: int = 2000, adapt: bool = True, **base) -> None:
        super().__init__(model, **base)
        if first_buffer < 1:
            raise ConfigError(f"{self.name}: first_buffer must be >= 1, got {first_buffer}")
        if not callable(getattr(model, "features", None)):
            raise ConfigError(f"{self.name}: the model needs a `features(x)` method giving its body's output")
        self.first_buffer = first_buffer
        self.first_chunk = ReservoirMemory(first_buffer, seed=derive_seed(self.seed, "first-chunk"), device=self.device)
        self.adapt = adapt
        self.frozen = False
        # the first boundary freezes the adapted network; without adaptation only the head's own work
        self.needs_boundaries = adapt or self.head_needs_boundaries
        if not adapt:  # the network as given is the backbone: frozen before the first batch
            self.freeze()

    # -- what a head defines ----------------------------------------------------------------------
    def fit(self, z: Tensor, y: Tensor) -> None:
        """Add features ``z`` (B, d) float64 with labels ``y`` (B,) to the class statistics."""
        raise NotImplementedError

    def scores(self, z: Tensor) -> Tensor:
        """``(B, n_classes)`` scores of features ``z`` (B, d) float64, with :func:`fill_unseen`
        for the classes without statistics."""
        raise NotImplementedError

    def head_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_head_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- the shared plumbing ----------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """(B, d) float64 features of the body, in evaluation mode."""
        was_training = self.model.training
        self.model.eval()
        z = self.model.features(x).flatten(1).double()
        self.model.train(was_training)
        return z

    def freeze(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        self.frozen = True

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        if not self.frozen:  # the first chunk: plain fine-tuning of the whole network
            self.train_mode()
            logits = self.model(batch.x)
            loss = self.ce(logits, batch.y, batch.task)
            self.step(loss)
            self.first_chunk.add(batch)
        else:  # the head's statistics take the batch; the counts are measured before
            z = self.features(batch.x)
            logits = self.mask(self.scores(z).float(), batch.task)
            loss = self.ce(logits, batch.y, batch.task)
            self.fit(z, batch.y)
        self.record_seen(batch)
        return self.stats(logits, batch, loss)

    def end_chunk(self) -> None:
        """At the first boundary: freeze the network and fit the head on the first chunk's kept
        samples. Later boundaries change nothing (the head is fitted as the batches stream)."""
        super().end_chunk()
        if self.frozen or not len(self.first_chunk):
            return
        self.freeze()
        kept = self.first_chunk.all()
        self.fit(self.features(kept.x), kept.y)

    def consolidate(self, batch: Batch, generator: torch.Generator | None = None) -> SleepStats:
        """A sleep step: fine-tuning on ``batch`` before the freeze (as the base class); after it,
        nothing is trained (the backbone is frozen and the head has already counted every sample it
        was shown), so the step only counts the batch."""
        if not self.frozen:
            return super().consolidate(batch, generator)
        logits = self.predict(batch.x, batch.task)
        loss = self.ce(logits, batch.y, batch.task)
        n_correct = int((logits.argmax(1) == batch.y).sum())
        return SleepStats(len(batch), n_correct, float(loss) * len(batch), source="rehearsal")

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        if not self.frozen:
            return super().predict(x, task)
        return self.mask(self.scores(self.features(x)).float(), task)

    def extra_state(self) -> dict:
        return {"first_chunk": self.first_chunk.state_dict(), "frozen": self.frozen, "head": self.head_state()}

    def load_extra_state(self, state: dict) -> None:
        self.first_chunk.load_state_dict(state["first_chunk"])
        self.load_head_state(state["head"])
        if bool(state["frozen"]):
            self.freeze()


def cosine_scores(z: Tensor, means: Tensor, has: Tensor) -> Tensor:
    """``(B, C)`` cosine similarity of features ``z`` (B, d) to class means ``means`` (C, d), with
    :func:`fill_unseen` where ``has`` (C,) is False.

    Examples
    --------
    >>> cosine_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),
    ...               torch.tensor([True, True, False]))
    tensor([[   1.,    0., -100.]])
    """
    return fill_unseen(F.normalize(z, dim=1) @ F.normalize(means, dim=1).T, has)
