"""Synaptic intelligence (SI).

Paper: Zenke, Poole, Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017.

Along the optimisation path every parameter accumulates its contribution to the drop of the task
loss, the path integral ``ω_k += −g_k·Δθ_k``, where ``g_k`` is the gradient of the *task* loss
(without the surrogate penalty) and ``Δθ_k`` the parameter change of that step. At the end of a
chunk ν the importance grows by ``Ω_k += ω_k / ((Δ_k^ν)² + ξ)``, with ``Δ_k^ν`` the total change of
``θ_k`` over the chunk; then ``ω`` is reset and the anchor ``θ̃`` becomes the current parameters.
The loss on new data is ``L + c·Σ_k Ω_k (θ_k − θ̃_k)²``.

Defaults: ``c = 0.5``, ``ξ = 1.0``, the values tuned for plain SGD on permuted MNIST in the DER
paper's benchmark (mammoth's ``best_args``). The paper's own values (``c = 0.1`` permuted, ``c = 1``
split MNIST, ``ξ = 1e-3``) were tuned for Adam.

Stiffness cap: with a small ``ξ`` some ``Ω_k`` become huge, and an explicit SGD step on
``c·Ω_k(θ_k − θ̃_k)²`` diverges once ``2·lr·c·Ω_k > 2`` (it did, at lr 0.05 on permuted
Fashion-MNIST with the paper's values). So after each consolidation ``Ω_k`` is capped at
``1/(2·lr·c)``: one step of the penalty alone then moves a weight at most back to its anchor.

Settings: class-, task- and domain-incremental. It needs chunk boundaries (not task-free: without
them ``Ω`` stays zero and SI is plain SGD).

Deviations
----------
- ``Ω`` is not clipped at zero. With the penalty active, ``−g·Δθ`` can be negative for a parameter
  that the penalty pulled against its task gradient; the paper's formula allows this and so do we.
- ``Δθ`` is whatever the optimiser did (SGD, with momentum or weight decay if configured), as in
  the paper, where the path integral is taken along the actual trajectory; the paper used Adam.
- Default ``c`` and ``ξ`` differ from the paper's, and ``Ω`` is capped at ``1/(2·lr·c)`` (see
  above); the paper has no cap.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.learn.base import Learner
from lifelong.learn.terms import TERMS, IncomingCE, QuadraticPenalty, QuadraticTerm, StepContext


@TERMS.register("si")
class SIPenalty(QuadraticTerm):
    """``c·Σ_k Ω_k (θ_k − θ̃_k)²`` with SI's path-integral importance.

    :meth:`after_backward` first records ``g``, the gradient of the task loss alone, then adds the
    penalty's gradient; :meth:`after_update` adds ``−g·Δθ`` to ``ω``.
    """

    name = "si"
    needs_boundaries = True

    def __init__(self, *, c: float = 0.5, xi: float = 1.0) -> None:
        self.c, self.xi = c, xi

    def bind(self, learner: Learner) -> None:
        self.penalty = QuadraticPenalty()  # Ω and θ̃ (a single, newest anchor)
        params = dict(learner.model.named_parameters())
        self.omega = {k: torch.zeros_like(p) for k, p in params.items()}  # ω: path integral this chunk
        self.start = {k: p.detach().clone() for k, p in params.items()}  # θ at the chunk's start
        self._g: dict[str, Tensor] = {}  # this step's task-loss gradient
        self._before: dict[str, Tensor] = {}  # θ before this step's update

    @property
    def strength(self) -> float:
        return self.c

    def after_backward(self, ctx: StepContext) -> None:
        params = dict(ctx.learner.model.named_parameters())
        self._g = {k: p.grad.detach().clone() for k, p in params.items() if p.grad is not None}  # task loss only
        self._before = {k: p.detach().clone() for k, p in params.items()}
        super().after_backward(ctx)  # then the penalty's gradient

    def after_update(self, ctx: StepContext) -> None:
        params = dict(ctx.learner.model.named_parameters())
        with torch.no_grad():
            for k, gk in self._g.items():
                self.omega[k] -= gk * (params[k] - self._before[k])  # ω += −g·Δθ
        self._g, self._before = {}, {}

    def end_chunk(self, learner: Learner) -> None:
        importance: dict[str, Tensor] = {}
        for k, p in learner.model.named_parameters():
            delta = p.detach() - self.start[k]  # Δ^ν: total change over the chunk
            importance[k] = self.omega[k] / (delta**2 + self.xi)
        # Ω ← Ω + Ω_new and θ̃ ← θ (online mode with γ = 1 is exactly the paper's accumulation)
        self.penalty.consolidate(learner.model, importance, mode="online", gamma=1.0)
        self.penalty.cap(self.c, learner.lr)  # the stiffness cap: 2·lr·c·Ω <= 1
        for k, p in learner.model.named_parameters():
            self.omega[k].zero_()
            self.start[k] = p.detach().clone()

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "omega": dict(self.omega), "start": dict(self.start)}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.omega = {k: v.clone() for k, v in state["omega"].items()}
        self.start = {k: v.clone() for k, v in state["start"].items()}


class SI(Learner):
    """No memory. Terms: ``CE(batch) + SI penalty`` (the penalty's gradient added after the task gradient is read)."""

    name = "si"
    description = "synaptic intelligence: path-integral importance, quadratic penalty"
    paper = "Zenke, Poole & Ganguli 2017, Continual Learning Through Synaptic Intelligence (ICML)"
    needs_boundaries = True

    def __init__(self, model: nn.Module, *, c: float = 0.5, xi: float = 1.0, **base) -> None:
        super().__init__(model, **base)
        self.c, self.xi = c, xi
        self.compose(IncomingCE(), SIPenalty(c=c, xi=xi))
