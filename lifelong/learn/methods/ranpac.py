"""RanPAC: a random projection of frozen features and a decorrelated ridge head.

Paper: McDonnell, Gong, Parvaneh, Abbasnejad, van den Hengel, "RanPAC: Random Projections and
Pre-trained Models for Continual Learning", NeurIPS 2023.

A frozen backbone gives features ``f(x)`` (L dims). A fixed random matrix ``W`` (L x M, entries
drawn once from N(0, 1)) and a nonlinearity lift them to ``h(x) = ReLU(f(x)ᵀW)`` (M dims). The
head keeps two running sums over every training sample seen, the Gram matrix ``G = Σ h hᵀ``
(M x M) and the class prototypes ``C = Σ h yᵀ`` (M x K, ``y`` one-hot), and predicts with
``s(x) = h(x)ᵀ W_o``, ``W_o = (G + λI)⁻¹ C``: the prototypes decorrelated by the inverse Gram
matrix, i.e. the ridge-regression solution from ``h`` to the one-hot labels. ``λ`` is chosen at
the end of each task from the grid ``10^-8 .. 10^8`` by the mean squared error of a ridge fit on
80% of that task's projected features against the other 20% (the authors' code). Nothing is
trained after the backbone is frozen, so there is no forgetting in the head: the sums are exact
whatever the order of the classes.

Here the backbone is the run's own network trained by plain fine-tuning on the first chunk and
frozen at the first boundary (:mod:`lifelong.learn.frozen`; the paper's "Phase 1", first-session
adaptation, without a parameter-efficient adapter), or, with ``adapt=False``, the network the
user passes, frozen from the start (the paper's RanPAC without Phase 1).

Settings: class- and task-incremental (the task mask restricts the scores); it needs announced
boundaries (the freeze and the choice of ``λ``). Domain-incremental streams are refused
(``needs_new_classes``), as for NCM and SLDA: the paper's domain-IL runs use an ImageNet backbone,
while a backbone trained on the first domain of a permuted stream does not describe the others.

Cost: after the first chunk the backbone is frozen, so a step is one forward pass and two rank-B
updates of the M x M Gram matrix (M = 1000); each boundary solves the ridge head for every λ of
its grid on an 80/20 split (a few M x M solves), which dominates on short streams.

Deviations
----------
- ``dim`` (the paper's M) defaults to 1000, not 10 000: the networks here have L = 256 features
  rather than a ViT's 768, and the fast tier must solve an M x M system at each boundary on a CPU.
- The first chunk's samples, and the samples each later chunk uses to choose ``λ``, are reservoirs
  of ``first_buffer`` samples (default 2000) of the chunk; duplicates (a sample seen in several
  epochs) are dropped before the 80/20 split, so that a validation sample is never also a training
  one. The split is a seeded shuffle (the authors' loader shuffles).
- ``G`` and ``C`` stream, one batch at a time, so with several epochs per chunk a sample of a later
  chunk is counted once per epoch, whereas the first chunk's kept samples are counted once (they
  are embedded at the freeze). The authors embed each task's data in one extra pass.
- ``W_o`` is solved at each boundary, and again when ``predict`` is called after more samples have
  been added; the step counts logged during a chunk use the head as last solved.
- No data augmentation; the backbone's first-chunk training is plain SGD, not the paper's PETL
  (AdaptFormer, SSF, VPT) with cosine learning-rate decay.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import StepStats
from lifelong.learn.frozen import FrozenFeatureHead, fill_unseen
from lifelong.learn.memory import ReservoirMemory
from lifelong.seeding import derive_seed

#: The authors' grid of ridge parameters, ``10^-8 .. 10^8``.
RIDGES = tuple(10.0 ** k for k in range(-8, 9))


def choose_ridge(h: Tensor, y: Tensor, n_classes: int, *, val_fraction: float = 0.2,
                 generator: torch.Generator | None = None, ridges: tuple[float, ...] = RIDGES) -> float:
    """The ridge in ``ridges`` whose fit on a random ``1 - val_fraction`` of ``(h, y)`` has the least
    mean squared error to the one-hot labels of the rest (ties: the smaller ridge).

    ``h`` (n, M) float64 features, ``y`` (n,) labels. Every ridge is exact from one symmetric
    eigendecomposition, of ``H Hᵀ`` (n_train x n_train) when there are fewer training samples than
    dimensions, of ``Hᵀ H`` otherwise.

    Examples
    --------
    >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(10, 1).double()
    >>> choose_ridge(h, torch.tensor([0, 1]).repeat(10), 2, generator=torch.Generator().manual_seed(0)) < 1
    True
    """
    n = h.shape[0]
    n_val = int(n * val_fraction)
    if n_val < 1 or n - n_val < 1:
        raise ConfigError(f"ranpac: choosing the ridge needs at least {int(1 / val_fraction) + 1} distinct samples, got {n}")
    perm = torch.randperm(n, generator=generator)
    tr, va = perm[n_val:], perm[:n_val]
    Y = F.one_hot(y, n_classes).double()
    Htr, Ytr, Hva, Yva = h[tr], Y[tr], h[va], Y[va]
    if Htr.shape[0] < Htr.shape[1]:  # W = Hᵀ(HHᵀ + λI)⁻¹Y: predictions Hva Hᵀ U (S + λ)⁻¹ Uᵀ Y
        s, U = torch.linalg.eigh(Htr @ Htr.T)
        left, right = Hva @ Htr.T @ U, U.T @ Ytr
    else:  # W = V (S + λ)⁻¹ Vᵀ HᵀY
        s, U = torch.linalg.eigh(Htr.T @ Htr)
        left, right = Hva @ U, U.T @ (Htr.T @ Ytr)
    s = s.clamp_min(0)  # round-off can make a zero eigenvalue slightly negative
    losses = [float(((left / (s + r)) @ right - Yva).pow(2).mean()) for r in ridges]
    return ridges[min(range(len(ridges)), key=lambda i: (losses[i], i))]


class RanPAC(FrozenFeatureHead):
    """Frozen features, a fixed random ReLU projection, and the ridge head ``(G + λI)⁻¹C``."""

    name = "ranpac"
    description = "RanPAC: random ReLU projection of frozen features and a ridge (decorrelated prototype) head, λ by validation"
    paper = "McDonnell et al. 2023, RanPAC: Random Projections and Pre-trained Models for Continual Learning (NeurIPS)"
    head_needs_boundaries = True  # λ is chosen, and W_o solved, at every boundary

    def __init__(self, model, *, dim: int = 1000, val_fraction: float = 0.2, **base) -> None:
        super().__init__(model, **base)
        if dim < 1:
            raise ConfigError(f"ranpac: dim must be >= 1, got {dim}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"ranpac: val_fraction must be in (0, 1), got {val_fraction}")
        self.dim, self.val_fraction = dim, val_fraction
        self.projection: Tensor | None = None  # (L, M) float64, drawn at the first fit
        self.gram: Tensor | None = None  # G (M, M)
        self.protos: Tensor | None = None  # C (M, K)
        self.counts = torch.zeros(self.n_classes, dtype=torch.float64, device=self.device)  # (K,)
        self.ridge = RIDGES[0]
        self.head: Tensor | None = None  # W_o (M, K), as last solved
        self.stale = False  # G, C changed since W_o was solved
        self.n_solved = 0  # boundaries at which λ was chosen
        self.recent = self._new_recent()

    def _new_recent(self) -> ReservoirMemory:
        """The reservoir of the current chunk's samples that chooses its ``λ``."""
        return ReservoirMemory(self.first_buffer, seed=derive_seed(self.seed, f"ridge-samples/{self.n_solved}"), device=self.device)

    def project(self, z: Tensor) -> Tensor:
        """``h = ReLU(z W)`` (B, M) of features ``z`` (B, L) float64."""
        if self.projection is None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "projection"))
            self.projection = torch.randn(z.shape[1], self.dim, generator=g, dtype=torch.float64).to(self.device)
        return torch.relu(z @ self.projection)

    def fit(self, z: Tensor, y: Tensor) -> None:
        h = self.project(z)
        if self.gram is None:
            self.gram = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
            self.protos = torch.zeros(self.dim, self.n_classes, dtype=torch.float64, device=self.device)
        self.gram += h.T @ h
        self.protos.index_add_(1, y, h.T)  # C += hᵀ onehot(y)
        self.counts += torch.bincount(y, minlength=self.n_classes).double()
        self.stale = True

    def solve(self) -> None:
        """``W_o = (G + λI)⁻¹ C`` (an LU solve, as the authors', not an explicit inverse)."""
        assert self.gram is not None and self.protos is not None
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.device)
        self.head = torch.linalg.solve(self.gram + self.ridge * eye, self.protos)
        self.stale = False

    def scores(self, z: Tensor) -> Tensor:
        if self.head is None:
            return torch.zeros(z.shape[0], self.n_classes, dtype=torch.float64, device=z.device)
        return fill_unseen(self.project(z) @ self.head, self.counts > 0)

    def observe(self, batch: Batch) -> StepStats:
        was_frozen = self.frozen
        out = super().observe(batch)
        if was_frozen:
            self.recent.add(batch)
        return out

    def end_chunk(self) -> None:
        """At every boundary: choose ``λ`` on the chunk's kept samples, then solve the head. (The
        first one also freezes the backbone and fits the first chunk, in :class:`FrozenFeatureHead`.)"""
        was_frozen = self.frozen
        super().end_chunk()
        if not self.frozen or self.gram is None:
            return
        source = self.recent if was_frozen else self.first_chunk
        if len(source):
            kept = source.all()
            z = self.features(kept.x)
            rows = torch.unique(torch.cat([z, kept.y[:, None].double()], 1), dim=0)  # drop repeated samples
            g = torch.Generator().manual_seed(derive_seed(self.seed, f"ridge-split/{self.n_solved}"))
            if int(rows.shape[0] * self.val_fraction) >= 1:
                self.ridge = choose_ridge(self.project(rows[:, :-1]), rows[:, -1].long(), self.n_classes,
                                          val_fraction=self.val_fraction, generator=g)
        self.n_solved += 1
        self.recent = self._new_recent()
        self.solve()

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        if self.frozen and self.stale:
            self.solve()
        return super().predict(x, task)

    def head_state(self) -> dict[str, Any]:
        return {"projection": self.projection, "gram": self.gram, "protos": self.protos, "counts": self.counts.clone(),
                "ridge": self.ridge, "head": self.head, "stale": self.stale, "n_solved": self.n_solved,
                "recent": self.recent.state_dict()}

    def load_head_state(self, state: dict[str, Any]) -> None:
        def copy(t):
            return None if t is None else t.clone()
        self.projection, self.gram, self.protos = copy(state["projection"]), copy(state["gram"]), copy(state["protos"])
        self.counts, self.head = state["counts"].clone(), copy(state["head"])
        self.ridge, self.stale, self.n_solved = float(state["ridge"]), bool(state["stale"]), int(state["n_solved"])
        self.recent = self._new_recent()
        self.recent.load_state_dict(state["recent"])
