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
from torch import Tensor, nn

from lifelong.learn.base import Learner
from lifelong.learn.terms import TERMS, IncomingCE, QuadraticPenalty, StepContext, Term


@TERMS.register("l2")
class L2Penalty(Term):
    """``(λ/2)·Σ_k (θ_k − θ*_k)²`` with ``θ*`` the weights at the last chunk boundary."""

    name = "l2"
    needs_boundaries = True

    def __init__(self, *, l2_lambda: float = 0.1) -> None:
        self.l2_lambda = l2_lambda

    def bind(self, learner: Learner) -> None:
        self.penalty = QuadraticPenalty()

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return 0.5 * self.l2_lambda * self.penalty(ctx.learner.model) if self.penalty else None

    def end_chunk(self, learner: Learner) -> None:
        ones = {k: torch.ones_like(p) for k, p in learner.model.named_parameters()}
        self.penalty.consolidate(learner.model, ones, mode="replace")

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])


class L2(Learner):
    """No memory. Terms: ``CE(batch) + L2 anchor``."""

    name = "l2"
    description = "L2 anchor to the previous chunk's weights (EWC with uniform importance)"
    paper = "Kirkpatrick et al. 2017 (the L2 baseline)"
    needs_boundaries = True

    def __init__(self, model: nn.Module, *, l2_lambda: float = 0.1, **base) -> None:
        super().__init__(model, **base)
        self.l2_lambda = l2_lambda
        self.compose(IncomingCE(), L2Penalty(l2_lambda=l2_lambda))
