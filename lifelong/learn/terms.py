"""Loss terms that learners add up: a quadratic parameter penalty and knowledge distillation.

Combining two ideas means composing these objects, not writing a third learner.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class QuadraticPenalty:
    """``Σ_k Ω_k (θ_k − θ*_k)²`` over the named parameters of a model.

    Several consolidations are folded into one (importance, anchor) pair:
    ``Σ_t Ω_t (θ − a_t)² = Ω (θ − a)² + const`` with ``Ω = Σ_t Ω_t`` and
    ``a = Σ_t Ω_t a_t / Ω``. The gradient is exact; only an additive constant is dropped.
    ``mode="online"`` instead keeps ``Ω ← γΩ + Ω_new`` with the newest anchor (online EWC).

    Examples
    --------
    >>> net = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad(): _ = net.weight.fill_(1.0)
    >>> pen = QuadraticPenalty()
    >>> pen.consolidate(net, {"weight": torch.tensor([[2.0]])})
    >>> with torch.no_grad(): _ = net.weight.fill_(3.0)
    >>> float(pen(net).detach())  # 2 * (3 - 1)^2
    8.0
    """

    def __init__(self) -> None:
        self.importance: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.importance)

    def consolidate(self, model: nn.Module, importance: dict[str, Tensor], *, mode: str = "sum", gamma: float = 1.0) -> None:
        for name, p in model.named_parameters():
            if name not in importance:
                continue
            new_w, theta = importance[name].detach(), p.detach().clone()
            if name not in self.importance or mode == "replace":
                self.importance[name], self.anchor[name] = new_w.clone(), theta
            elif mode == "online":
                self.importance[name] = gamma * self.importance[name] + new_w
                self.anchor[name] = theta
            elif mode == "sum":
                old_w, old_a = self.importance[name], self.anchor[name]
                total = old_w + new_w
                safe = torch.where(total > 0, total, torch.ones_like(total))
                self.anchor[name] = torch.where(total > 0, (old_w * old_a + new_w * theta) / safe, theta)
                self.importance[name] = total
            else:
                raise ValueError(f"unknown consolidation mode {mode!r}")

    def cap(self, strength: float, lr: float) -> None:
        """Clamp every importance at ``1/(2·lr·strength)`` (the stiffness cap).

        The penalty ``strength·Ω(θ − a)²`` contributes ``2·lr·strength·Ω·(θ − a)`` to a plain SGD
        step. Above the cap that step overshoots the anchor, and past twice the cap SGD diverges.
        Capped, one penalty step moves a weight at most back to its anchor.
        """
        if strength > 0:
            for w in self.importance.values():
                w.clamp_(max=1.0 / (2.0 * lr * strength))

    def __call__(self, model: nn.Module) -> Tensor:
        total = torch.zeros(())
        for name, p in model.named_parameters():
            if name in self.importance:
                total = total + (self.importance[name] * (p - self.anchor[name]) ** 2).sum()
        return total

    def state_dict(self) -> dict:
        return {"importance": dict(self.importance), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict) -> None:
        self.importance, self.anchor = dict(state["importance"]), dict(state["anchor"])


def distillation(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Li & Hoiem's knowledge-distillation loss: cross-entropy between the temperature-softened
    teacher and student distributions, averaged over the batch.

    Examples
    --------
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> bool(distillation(z, z, 2.0) > 0)  # equals the teacher's entropy, not zero
    True
    """
    target = F.softmax(teacher / temperature, dim=1)
    return -(target * F.log_softmax(student / temperature, dim=1)).sum(1).mean()
