"""WA: weight aligning.

Paper: Zhao, Xiao, Gan, Zhang, Xia, "Maintaining Discrimination and Fairness in Class Incremental
Learning", CVPR 2020.

- **Training** (maintaining discrimination). Each step trains on the incoming batch joined by a
  batch of herded exemplars with ``(1 − λ)·CE + λ·KD``: cross-entropy over every class seen so far,
  and knowledge distillation (temperature ``temperature``, 2 in the paper) between the network
  frozen at the last boundary and the current one on the old classes' logits, with
  ``λ = n_old / n_seen`` (the number of old classes over the number seen).
- **Weight clipping.** After every SGD step the head's weights are clipped at zero from below, so
  that the norms compared below measure how strongly a class is scored.
- **Weight aligning** (maintaining fairness), at each boundary after the chunk's training: the
  new classes' weight vectors are rescaled by ``γ = mean‖W_old‖ / mean‖W_new‖`` so that their mean
  norm equals the old classes'.
- Exemplars: iCaRL's herding with ``m = K // t`` per class.

Settings: class-incremental (the paper's); it needs chunk boundaries, and refuses
domain-incremental streams (``needs_new_classes``), where no class is new after the first chunk.

Deviations
----------
- Streaming: each incoming batch is joined by ``replay_batch`` exemplars drawn uniformly (default:
  as many as incoming), not epochs over the union of new data and all exemplars.
- Fixed head over every class: unseen classes' logits are left out of the softmax (the paper grows
  the head). The head's bias is not aligned (the paper's FC layer is aligned by its weights; the
  ledger's MLP head keeps its bias, trained as usual).
- ``distill``, ``clip`` and ``align`` switch the three parts off, for ablations; with all three off
  the learner is plain CE fine-tuning on new data and the same herded exemplars (the baseline of
  issue 15's bar).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.exemplars import ExemplarLearner
from lifelong.learn.terms import distillation


class WA(ExemplarLearner):
    name = "wa"
    description = "WA: herded exemplars, distillation, clipped head weights aligned to the old classes' norm"
    paper = "Zhao et al. 2020, Maintaining Discrimination and Fairness in Class Incremental Learning (CVPR)"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None,
                 chunk_buffer: int = 2000, temperature: float = 2.0, distill: bool = True, clip: bool = True,
                 align: bool = True, **base) -> None:
        super().__init__(model, mem_size=mem_size, replay_batch=replay_batch, chunk_buffer=chunk_buffer, **base)
        self.temperature, self.distill, self.clip, self.align = temperature, distill, clip, align
        #: the last boundary's aligning factor (nan before the first alignment), for inspection
        self.gamma = float("nan")

    def loss(self, train: Batch, logits: Tensor, active: Tensor, n_incoming: int) -> Tensor:
        ce = self.seen_ce(logits, train.y, active, train.task)
        n_old = int(self.old_classes.sum())
        if not self.distill or self.teacher is None or n_old == 0:
            return ce
        lam = n_old / int(active.sum())
        with torch.no_grad():
            old = self.teacher(train.x)[:, self.old_classes]
        kd = distillation(logits[:, self.old_classes], old, self.temperature)
        return (1.0 - lam) * ce + lam * kd

    @torch.no_grad()
    def after_step(self) -> None:
        if self.clip:
            self.model.head.weight.clamp_(min=0.0)

    @torch.no_grad()
    def after_training(self) -> None:
        new = self.seen_classes & ~self.old_classes
        if not self.align or not bool(self.old_classes.any()) or not bool(new.any()):
            return
        norms = self.model.head.weight.norm(dim=1)
        self.gamma = float(norms[self.old_classes].mean() / norms[new].mean())
        self.model.head.weight[new] *= self.gamma

    def extra_state(self) -> dict:
        return {**super().extra_state(), "gamma": self.gamma}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.gamma = float(state["gamma"])
