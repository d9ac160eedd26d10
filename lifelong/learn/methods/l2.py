"""L2 anchoring to the previous chunk's weights (uniform importance).

The classic baseline of the regularisation family, as used in Kirkpatrick et al. 2017 (PNAS,
"Overcoming catastrophic forgetting in neural networks", the "L2" curve) and in van de Ven &
Tolias 2019's comparisons: every parameter is pulled towards its value at the end of the previous
chunk with the same strength, ``L + (λ/2)·Σ_k (θ_k − θ*_k)²``. It is EWC with ``F ≡ 1``: the
difference between the two isolates what the Fisher weighting buys.

Default ``λ = 0.1``: on permuted Fashion-MNIST (MLP, SGD lr 0.05, 5 domains) ``λ = 1`` keeps the
network from learning new domains (final ACC 0.62, below naive's 0.69); ``λ = 0.1`` gives 0.74.

Settings: class-, task- and domain-incremental; it needs chunk boundaries (not task-free).

Deviations
----------
- Only the previous chunk's weights anchor the penalty (``θ*`` is replaced at each boundary), not
  a sum of one penalty per past chunk.
"""

from __future__ import annotations

import torch
from torch import nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.terms import QuadraticPenalty


class L2(Learner):
    name = "l2"
    description = "L2 anchor to the previous chunk's weights (EWC with uniform importance)"
    paper = "Kirkpatrick et al. 2017 (the L2 baseline)"

    def __init__(self, model: nn.Module, *, l2_lambda: float = 0.1, **base) -> None:
        super().__init__(model, **base)
        self.l2_lambda = l2_lambda
        self.penalty = QuadraticPenalty()

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.model.train()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        total = loss + 0.5 * self.l2_lambda * self.penalty(self.model) if self.penalty else loss
        self.step(total)
        return self.stats(logits, batch, loss)

    def end_chunk(self) -> None:
        ones = {k: torch.ones_like(p) for k, p in self.model.named_parameters()}
        self.penalty.consolidate(self.model, ones, mode="replace")

    def extra_state(self) -> dict:
        return {"penalty": self.penalty.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
