"""Nearest class mean on a backbone frozen after the first chunk (NCM, SimpleCIL-style).

Paper: Zhou, Cai, Ye, Zhan, Liu, "Revisiting Class-Incremental Learning with Pre-Trained Models:
Generalizability and Adaptivity are All You Need" (SimpleCIL), IJCV 2024 (arXiv:2303.07338, 2023).

SimpleCIL freezes a backbone and replaces the classifier by the class prototypes: each class's
mean embedding ``μ_c = (1/n_c) Σ_{y_i = c} h(x_i)``, and a sample goes to the class of highest
cosine similarity ``cos(h(x), μ_c)``. Nothing is trained after the backbone is frozen; a new
class costs one running mean.

Here the backbone is the run's own network, trained by plain fine-tuning on the first chunk and
frozen at the first boundary (:mod:`lifelong.learn.frozen`); the prototypes are running means, so
the head is exact in a stream whatever the batch order. Before the first boundary it predicts with
the network's own head.

Settings: class- and task-incremental (the task mask restricts the scores); it needs announced
boundaries (the freeze). Domain-incremental streams are refused (``needs_new_classes``): a backbone
frozen on the first domain does not describe the others, and one mean per class pooled over
domains mixes unrelated clusters.

Limitation, measured (seeds 0-1, ``benchmarks/defaults_matrix.py``): in task-incremental digits (5
tasks of 2 classes) NCM ends at 0.860 against fine-tuning's 0.969. Fine-tuning is near its ceiling
there (each task is a two-way problem and the task mask removes the class-IL bias), while a
backbone trained on the first two classes only gives cosine prototypes that separate later pairs
less well; SLDA on the same features reaches 0.990. In class-incremental streams NCM is far above
fine-tuning (0.676 against 0.190 on split digits, 0.528 against 0.199 on split Fashion-MNIST).

Deviations
----------
- SimpleCIL's backbone is pre-trained on ImageNet; here it is trained on the first chunk only (the
  "first-task adaptation" of the same paper's APER, without its adapters or the concatenation with
- The first chunk's prototypes come from a reservoir of ``first_buffer`` of its samples (default
  2000), embedded once by the frozen backbone at the boundary, not from the whole chunk.
- No data augmentation of the prototypes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lifelong.learn.frozen import FrozenFeatureHead, cosine_scores


class NCM(FrozenFeatureHead):
    """Prototypes: running class means of the frozen features; cosine similarity to them."""

    name = "ncm"
    description = "NCM (SimpleCIL): cosine nearest class mean on a backbone frozen after the first chunk"
    paper = "Zhou et al. 2024, Revisiting Class-Incremental Learning with Pre-Trained Models (SimpleCIL, IJCV)"
    needs_boundaries = False  # at the default (no adaptation) no boundary does any work; adapt=True needs them

    def __init__(self, model, *, adapt: bool = False, **base) -> None:
        super().__init__(model, adapt=adapt, **base)
        self.sums: Tensor | None = None  # (C, d) float64, allocated on the first fit
        self.counts = torch.zeros(self.n_classes, dtype=torch.float64, device=self.device)  # (C,)

    def fit(self, z: Tensor, y: Tensor) -> None:
        if self.sums is None:
            self.sums = torch.zeros(self.n_classes, z.shape[1], dtype=torch.float64, device=self.device)
        self.sums.index_add_(0, y, z)
        self.counts += torch.bincount(y, minlength=self.n_classes).double()

    def scores(self, z: Tensor) -> Tensor:
        if self.sums is None:
            return torch.zeros(z.shape[0], self.n_classes, dtype=torch.float64, device=z.device)
        has = self.counts > 0
        means = self.sums / self.counts.clamp_min(1)[:, None]
        return cosine_scores(z, means, has)

    def head_state(self) -> dict[str, Any]:
        return {"sums": self.sums, "counts": self.counts.clone()}

    def load_head_state(self, state: dict[str, Any]) -> None:
        self.sums = None if state["sums"] is None else state["sums"].clone()
        self.counts = state["counts"].clone()
