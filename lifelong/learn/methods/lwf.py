"""Learning without Forgetting (LwF).

Paper: Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017.

At each chunk boundary the current network is frozen as the teacher. On new data the loss is the
cross-entropy on the true labels plus ``alpha`` times the distillation loss (temperature ``T``,
default 2) between the teacher's and the student's outputs for the classes seen before the chunk.

Settings: class-, task- and domain-incremental; needs chunk boundaries (without them it is Naive).

Deviations
----------
- Single-head network: the "old task heads" are the logits of previously seen classes, and the
  new-task cross-entropy runs over the full head (the usual class-incremental adaptation).
- No warm-up phase that trains only the new head first.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.terms import distillation


class LwF(Learner):
    name = "lwf"
    description = "learning without forgetting: distils the previous model on old classes"
    paper = "Li & Hoiem 2016, Learning without Forgetting"

    def __init__(self, model: nn.Module, *, alpha: float = 1.0, temperature: float = 2.0, **base) -> None:
        super().__init__(model, **base)
        self.alpha, self.temperature = alpha, temperature
        self.teacher: nn.Module | None = None
        self.old_classes = torch.zeros(self.n_classes, dtype=torch.bool)

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        total = loss
        if self.teacher is not None and bool(self.old_classes.any()):
            with torch.no_grad():
                old = self.teacher(batch.x)[:, self.old_classes]
            total = total + self.alpha * distillation(logits[:, self.old_classes], old, self.temperature)
        self.step(total)
        return self.stats(logits, batch, loss)

    def end_chunk(self) -> None:
        self.teacher = copy.deepcopy(self.model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.old_classes = self.seen_classes.clone()

    def extra_state(self) -> dict:
        teacher = self.teacher.state_dict() if self.teacher is not None else None
        return {"teacher": teacher, "old_classes": self.old_classes.clone()}

    def load_extra_state(self, state: dict) -> None:
        self.old_classes = state["old_classes"].clone()
        if state["teacher"] is None:
            self.teacher = None
        else:
            self.teacher = copy.deepcopy(self.model).eval()
            self.teacher.load_state_dict(state["teacher"])
            for p in self.teacher.parameters():
                p.requires_grad_(False)
