"""Nearest class mean on a frozen backbone (NCM, SimpleCIL).

Paper: Zhou, Cai, Ye, Zhan, Liu, "Revisiting Class-Incremental Learning with Pre-Trained Models:
Generalizability and Adaptivity are All You Need" (SimpleCIL), IJCV 2024 (arXiv:2303.07338, 2023).

SimpleCIL freezes a backbone and replaces the classifier by the class prototypes: each class's
mean embedding ``μ_c = (1/n_c) Σ_{y_i = c} h(x_i)`` of the un-normalised features, and a sample
goes to the class of highest cosine similarity ``cos(h(x), μ_c)``. Nothing is trained; a new class
costs one running mean, so the head is exact in a stream whatever the batch order.

By default (``adapt=False``), as in SimpleCIL, the backbone is the network as given, frozen from
the first batch (:mod:`lifelong.learn.frozen`); no boundary does any work, so NCM also runs on
task-free streams. With ``adapt=True`` the network is first fine-tuned on the first chunk and frozen
at the first boundary (the "first-task adaptation" of the same paper's APER, without its adapters
or its concatenation with the pre-trained features); it predicts with the network's own head until
then.

Settings: class-, task-incremental (the task mask restricts the cosine comparison to the task's
classes) and task-free. Domain-incremental streams are refused (``needs_new_classes``): one mean per
class pooled over domains mixes unrelated clusters.

Why no adaptation by default (measured, ``benchmarks/defaults_matrix.py``, seeds 0-1; BENCHMARKS.md,
"RanPAC, and NCM in task-IL"): adapted on the first chunk (two classes of digits), the network's
ReLU features describe little but those two classes, and the cosine prototypes of later classes
crowd together: task-incremental digits ended at 0.860 against fine-tuning's 0.969, class-
incremental digits at 0.595. The network as built (randomly initialised in a config run; its
random ReLU features keep the input's geometry) gives 0.977 and 0.869. APER's concatenation of the
two feature sets gives 0.909 and 0.654; prototypes of L2-normalised features (iCaRL's) 0.866 and
0.594. The task mask was already applied in task-IL; it is not the cause.

Deviations
----------
- SimpleCIL's backbone is pre-trained on ImageNet. Here it is whatever network the learner is
  given: a user's pre-trained one through the Python API, or, in a run built from a config, a
  freshly initialised one, whose random features then play the pre-trained model's part.
- With ``adapt=True``, the first chunk's prototypes come from a reservoir of ``first_buffer`` of its
  samples (default 2000), embedded once by the frozen backbone at the boundary.
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
    new_classes_reason = ("its backbone is frozen (as given, or after the first chunk with adapt=True), and one mean "
                          "per class pooled over domains mixes unrelated clusters")

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
