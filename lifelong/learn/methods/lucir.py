"""LUCIR: a unified classifier learned incrementally via rebalancing.

Paper: Hou, Pan, Loy, Wang, Lin, "Learning a Unified Classifier Incrementally via Rebalancing",
CVPR 2019.

- **Cosine normalisation.** The scores are ``σ·⟨θ̄_c, f̄(x)⟩``: the cosine between the L2-normalised
  feature and each class's normalised weight vector (the head's rows), times a learnable scale
  ``σ``, so old and new classes' weight norms cannot bias the prediction.
- **Less-forget constraint.** On every sample of the step (new data and exemplars),
  ``λ·(1 − ⟨f̄*(x), f̄(x)⟩)``: the features are kept in the direction the network frozen at the
  last boundary gives them, with ``λ = λ_base·sqrt(n_old / n_new)`` (old and new class counts).
- **Inter-class separation.** For each exemplar (an old-class sample) in the step, a margin
  ranking loss ``Σ_k max(0, m − ⟨θ̄_y, f̄⟩ + ⟨θ̄_k, f̄⟩)`` against its ``K`` highest-scoring new
  classes (hard negatives), averaged over exemplars and negatives.
- Plus cross-entropy on the scaled cosine scores over the classes seen so far. Exemplars are
  iCaRL's herding, ``m = K // t`` per class; the prediction is the cosine classifier ("CNN" in the
  paper).

Settings: class-incremental (the paper's); it needs chunk boundaries, and refuses
domain-incremental streams (``needs_new_classes``). It works on any built-in backbone: it reads
``model.features(x)`` and the head's weight matrix.

Deviations
----------
- Streaming: each incoming batch is joined by ``replay_batch`` exemplars drawn uniformly (default:
  as many as incoming), not epochs over the union of new data and exemplars; so there is no
  class-balanced finetuning stage (optional in the paper) either.
- The backbone's last ReLU is kept (the paper removes it so features can be negative); the head's
  bias is unused. New classes' weights are not imprinted from their mean features at the start
  of a chunk. ``σ`` starts at ``scale_init`` (default 10) rather than 1: one pass of a few epochs
  does not give a scale that starts at 1 time to grow.
- Fixed head over every class; unseen classes' scores are left out of the softmax and of the
  negatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.exemplars import ExemplarLearner


def cosine_scores(features: Tensor, weight: Tensor) -> Tensor:
    """``(B, C)`` cosines between the rows of ``features`` (B, d) and of ``weight`` (C, d)."""
    return F.normalize(features, dim=1) @ F.normalize(weight, dim=1).t()


def margin_ranking(cos: Tensor, y: Tensor, negatives: Tensor, *, margin: float, k: int) -> Tensor | None:
    """Mean of ``max(0, margin − cos[i, y_i] + cos[i, n])`` over the rows ``i`` and their ``k``
    highest-scoring classes ``n`` among ``negatives`` (C,) bool; None when there are no rows or
    negatives.

    Examples
    --------
    >>> cos = torch.tensor([[0.9, 0.6, 0.1]])  # class 0 is the truth; 1 and 2 are new
    >>> round(float(margin_ranking(cos, torch.tensor([0]), torch.tensor([False, True, True]), margin=0.5, k=1)), 4)
    0.2
    """
    if len(y) == 0 or not bool(negatives.any()):
        return None
    k = min(k, int(negatives.sum()))
    hard = cos.masked_fill(~negatives, float("-inf")).topk(k, dim=1).values  # (N, k)
    truth = cos.gather(1, y[:, None])  # (N, 1)
    return F.relu(margin - truth + hard).mean()


class LUCIR(ExemplarLearner):
    name = "lucir"
    description = "LUCIR: cosine-normalised head, feature distillation (less-forget), margin ranking on exemplars"
    paper = "Hou et al. 2019, Learning a Unified Classifier Incrementally via Rebalancing (CVPR)"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None,
                 chunk_buffer: int = 2000, lambda_base: float = 5.0, margin: float = 0.5, k_negatives: int = 2,
                 margin_weight: float = 1.0, scale_init: float = 10.0, **base) -> None:
        super().__init__(model, mem_size=mem_size, replay_batch=replay_batch, chunk_buffer=chunk_buffer, **base)
        self.lambda_base, self.margin, self.k_negatives = lambda_base, margin, k_negatives
        self.margin_weight, self.scale_init = margin_weight, scale_init
        #: the learnable scale σ of the cosine scores
        self.scale = nn.Parameter(torch.tensor(float(scale_init), device=self.device))
        self.opt.add_param_group({"params": [self.scale]})

    def cosine(self, features: Tensor) -> Tensor:
        return cosine_scores(features, self.model.head.weight)

    def logits(self, x: Tensor) -> Tensor:
        self._features = self.model.features(x)  # kept for the less-forget term of this step
        return self.scale * self.cosine(self._features)

    def less_forget_weight(self, active: Tensor) -> float:
        n_old = int(self.old_classes.sum())
        n_new = int((active & ~self.old_classes).sum())
        return self.lambda_base * math.sqrt(n_old / n_new) if n_old and n_new else 0.0

    def loss(self, train: Batch, logits: Tensor, active: Tensor, n_incoming: int) -> Tensor:
        loss = self.seen_ce(logits, train.y, active, train.task)
        if self.teacher is None or not bool(self.old_classes.any()):
            return loss
        features = self._features
        if len(features) != len(train):  # BiC-style held-out rows never apply here; kept for safety
            features = self.model.features(train.x)
        lam = self.less_forget_weight(active)
        if lam > 0:
            with torch.no_grad():
                old = self.teacher.features(train.x)
            loss = loss + lam * (1.0 - F.cosine_similarity(features, old, dim=1)).mean()
        if self.margin_weight > 0:
            is_old = self.old_classes[train.y]
            mr = margin_ranking(self.cosine(features[is_old]), train.y[is_old], active & ~self.old_classes,
                                margin=self.margin, k=self.k_negatives)
            if mr is not None:
                loss = loss + self.margin_weight * mr
        return loss

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        was_training = self.model.training
        if was_training:
            self.model.eval()
        out = self.mask(self.scale * self.cosine(self.model.features(x)), task)
        if was_training:
            self.model.train()
        return out

    def extra_state(self) -> dict:
        return {**super().extra_state(), "scale": self.scale.detach().clone()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        with torch.no_grad():
            self.scale.copy_(state["scale"])
