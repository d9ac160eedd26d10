"""Naive fine-tuning: plain SGD on each incoming batch, nothing else.

The lower bound of every continual-learning comparison; it shows catastrophic forgetting.
Settings: class-, task- and domain-incremental, online/task-free. No deviations.
"""

from __future__ import annotations

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats


class Naive(Learner):
    name = "naive"
    description = "fine-tuning with plain SGD on each incoming batch (lower bound)"
    paper = "baseline"

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        self.step(loss)
        return self.stats(logits, batch, loss)
