"""Deep streaming linear discriminant analysis (SLDA) on a backbone frozen after the first chunk.

Paper: Hayes, Kanan, "Lifelong Machine Learning with Deep Streaming Linear Discriminant Analysis",
CVPR Workshops (CLVision) 2020.

A frozen backbone ``h`` feeds a linear discriminant head trained in one pass: a running mean
``μ_c`` and count per class, and one covariance ``Σ`` shared by all classes, each updated per
sample. Prediction uses the precision matrix ``Λ = ((1 − ε)Σ + εI)⁻¹`` with shrinkage ``ε``:
``score_c(x) = μ_cᵀΛ h(x) − ½ μ_cᵀΛμ_c`` (equal class priors). No gradient step is taken.

Here the backbone is the run's own network, trained by plain fine-tuning on the first chunk and
frozen at the first boundary (:mod:`lifelong.learn.frozen`); the head's statistics start with the
first chunk's kept samples (the paper's "base initialisation") and stream from then on.

Settings: class- and task-incremental (the task mask restricts the scores); it needs announced
boundaries (the freeze). Domain-incremental streams are refused (``needs_new_classes``): a backbone
frozen on the first domain does not describe the others, and one mean per class pooled over
domains mixes unrelated clusters.

Deviations
----------
- The paper's backbone is an ImageNet ResNet-18 trained on the first 100 classes; here it is the
  run's network trained on the first chunk only.
- ``Σ`` is the exact pooled within-class covariance ``(1/n) Σ_c Σ_{y_i = c} (h_i − μ_c)(h_i − μ_c)ᵀ``
  of everything seen, updated per batch with the exact (Chan et al.) merge of each class's batch
  scatter. The authors' per-sample update weights each outer product by the total count
  ``t/(t+1)`` instead of the class count, an approximation of the same quantity.
- The first chunk's statistics come from a reservoir of ``first_buffer`` of its samples (default
  2000), embedded once by the frozen backbone at the boundary.
- ``shrinkage`` defaults to the paper's 1e-4.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lifelong.errors import ConfigError
from lifelong.learn.frozen import FrozenFeatureHead, fill_unseen


class SLDA(FrozenFeatureHead):
    """Class means and one shared covariance of the frozen features; the LDA scores."""

    name = "slda"
    description = "SLDA: streaming linear discriminant analysis (class means, shared covariance) on a backbone frozen after the first chunk"
    paper = "Hayes & Kanan 2020, Lifelong Machine Learning with Deep Streaming Linear Discriminant Analysis (CVPRW)"

    def __init__(self, model, *, shrinkage: float = 1e-4, **base) -> None:
        super().__init__(model, **base)
        if not 0 < shrinkage <= 1:
            raise ConfigError(f"slda: shrinkage must be in (0, 1], got {shrinkage}")
        self.shrinkage = shrinkage
        self.means: Tensor | None = None  # (C, d) float64
        self.counts = torch.zeros(self.n_classes, dtype=torch.float64, device=self.device)  # (C,)
        self.scatter: Tensor | None = None  # (d, d): Σ_c Σ_i (h_i − μ_c)(h_i − μ_c)ᵀ

    def fit(self, z: Tensor, y: Tensor) -> None:
        d = z.shape[1]
        if self.means is None:
            self.means = torch.zeros(self.n_classes, d, dtype=torch.float64, device=self.device)
            self.scatter = torch.zeros(d, d, dtype=torch.float64, device=self.device)
        for c in y.unique().tolist():
            zc = z[y == c]  # (n_b, d)
            n_a, n_b = float(self.counts[c]), float(zc.shape[0])
            mean_b = zc.mean(0)
            centred = zc - mean_b
            delta = mean_b - self.means[c]
            # Chan et al.: M2 = M2_a + M2_b + n_a·n_b/(n_a + n_b)·δδᵀ
            self.scatter += centred.T @ centred + (n_a * n_b / (n_a + n_b)) * torch.outer(delta, delta)
            self.means[c] += (n_b / (n_a + n_b)) * delta
            self.counts[c] = n_a + n_b

    def discriminant(self) -> tuple[Tensor, Tensor]:
        """``W = μΛ`` (C, d) and ``b = −½ diag(μΛμᵀ)`` (C,), with ``Λ = ((1 − ε)Σ + εI)⁻¹`` and ``Σ``
        the pooled within-class covariance (a Cholesky solve, not an explicit inverse)."""
        assert self.scatter is not None and self.means is not None
        d = self.scatter.shape[0]
        sigma = self.scatter / self.counts.sum()
        L = torch.linalg.cholesky((1 - self.shrinkage) * sigma + self.shrinkage * torch.eye(d, dtype=torch.float64, device=sigma.device))
        W = torch.cholesky_solve(self.means.T, L).T  # (C, d): Λ is symmetric
        return W, -0.5 * (W * self.means).sum(1)

    def scores(self, z: Tensor) -> Tensor:
        if self.means is None:
            return torch.zeros(z.shape[0], self.n_classes, dtype=torch.float64, device=z.device)
        W, bias = self.discriminant()
        return fill_unseen(z @ W.T + bias, self.counts > 0)

    def head_state(self) -> dict[str, Any]:
        return {"means": self.means, "counts": self.counts.clone(), "scatter": self.scatter}

    def load_head_state(self, state: dict[str, Any]) -> None:
        self.means = None if state["means"] is None else state["means"].clone()
        self.scatter = None if state["scatter"] is None else state["scatter"].clone()
        self.counts = state["counts"].clone()
