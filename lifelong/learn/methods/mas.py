"""Memory aware synapses (MAS).

Paper: Aljundi, Babiloni, Elhoseiny, Rohrbach, Tuytelaars, "Memory Aware Synapses: Learning what
(not) to forget", ECCV 2018.

The importance of a parameter is how sensitive the learned function is to it, measured without
labels: ``Ω_k = (1/N) Σ_n |∂‖f(x_n)‖²₂ / ∂θ_k|``, the mean over samples of the absolute gradient of
the squared L2 norm of the network's output (the logits), taken per sample as in the paper's Eq. 2
(per-sample gradients come from ``torch.func``; the absolute value of a batch's summed gradient
would let the samples' signs cancel). It is computed at the end of each chunk on a uniform sample
of that chunk and accumulated over chunks, ``Ω ← Ω + Ω_new``, as the paper and its code do; the
loss on new data is ``L + λ·Σ_k Ω_k (θ_k − θ*_k)²`` (the paper's Eq. 3, no factor 1/2) with ``θ*``
the parameters at the end of the previous chunk.

Importance normalisation (``normalize=True``, the default): each chunk's ``Ω_new`` is divided by
its mean over all parameters before it is added, so ``λ`` is the mean stiffness one chunk adds and
the importance keeps only its shape. Why: the raw ``Ω`` has the units of the output, ``2|f_c|`` for
a head bias, so its scale is set by how large the logits have grown, which depends on the data
and on the protocol rather than on the method. On permuted digits (5 domains, 45 epochs per domain,
MLP 64-256-256-10, lr 0.05) the raw mean ``Ω`` of the first chunk is about 1.4, head biases reach
tens, and the old default ``λ = 0.1`` held every weight so hard that the later domains were barely
learned: final ACC 0.44 and 0.49 (seeds 0, 1) against naive's 0.48 and 0.45; ``λ = 0.3`` gave 0.37.
A raw ``λ`` that suits one stream (0.1 on one-epoch Fashion-MNIST) is ten times too strong on
another. With the normalisation a single ``λ = 0.01`` beats naive on permuted digits with 5 and
10 domains, permuted MNIST-1D and permuted Fashion-MNIST (see ``docs/learners.md`` and the
report of this change).

Stiffness cap: an explicit SGD step on ``λ·Ω_k(θ_k − θ*_k)²`` overshoots the anchor once
``2·lr·λ·Ω_k > 1`` and diverges once it exceeds 2. So after each consolidation ``Ω_k`` is capped
at ``1/(2·lr·λ)``: one step of the penalty alone then moves a weight at most back to its anchor,
which is what an infinitely important weight should do.

Settings: class-, task- and domain-incremental; it needs chunk boundaries (not task-free).

Deviations
----------
- ``Ω`` is estimated on a reservoir sample (``importance_samples``) of the chunk's training data,
  not all of it.
- Each chunk's ``Ω_new`` is normalised to mean 1 before it is accumulated (see above); the paper
  adds raw importances. ``normalize=False`` gives the paper's raw ``Ω`` (then ``λ`` has the raw
  scale: the paper used ``λ = 1``, which on permuted Fashion-MNIST froze the network).
- Default ``λ`` is 0.01 on the normalised scale, not the paper's 1 on the raw one, and ``Ω`` is
  capped at ``1/(2·lr·λ)`` (see above); the paper has no cap.
- In task-incremental runs the output is the sample's own task head: logits of other tasks'
  classes are left out of the norm (the multi-head network by declared masking).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from lifelong.data import Batch
from lifelong.learn.base import Learner
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.persample import linear_sample_grad_sums
from lifelong.learn.terms import TERMS, IncomingCE, QuadraticPenalty, QuadraticTerm, StepContext
from lifelong.seeding import derive_seed


@TERMS.register("mas")
class MASPenalty(QuadraticTerm):
    """``λ·Σ_k Ω_k (θ_k − θ*_k)²`` with MAS's output-sensitivity importance, estimated at each
    boundary on a reservoir sample of the chunk."""

    name = "mas"
    needs_boundaries = True

    def __init__(self, *, mas_lambda: float = 0.01, importance_samples: int = 1000, normalize: bool = True) -> None:
        self.mas_lambda, self.importance_samples, self.normalize = mas_lambda, importance_samples, normalize

    def bind(self, learner: Learner) -> None:
        self.penalty = QuadraticPenalty()
        self.chunk_sample = ReservoirMemory(self.importance_samples, seed=derive_seed(learner.seed, "mas-sample"), device=learner.device)

    @property
    def strength(self) -> float:
        return self.mas_lambda

    def after_update(self, ctx: StepContext) -> None:
        self.chunk_sample.add(ctx.batch)

    def importance(self, learner: Learner, batch: Batch, chunk_size: int = 256) -> dict[str, Tensor]:
        """``(1/N) Σ_n |∂‖f(x_n)‖²/∂θ|`` for each named parameter."""
        model = learner.model
        params = {k: v.detach() for k, v in model.named_parameters()}

        def sq_norm(p, x, keep):  # keep: (C,) 1.0 for the outputs that belong to the sample's head
            out = functional_call(model, p, (x.unsqueeze(0),))[0]
            return ((out * keep) ** 2).sum()

        per_sample = vmap(grad(sq_norm), in_dims=(None, 0, 0))
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        model.eval()
        for s in range(0, len(batch), chunk_size):
            x = batch.x[s : s + chunk_size]
            task = batch.task[s : s + chunk_size] if batch.task is not None else None
            keep = learner.allowed_classes(task, len(x)).float()
            sums = linear_sample_grad_sums(  # one backward pass for an MLP (lifelong.learn.persample)
                model, x, lambda out, k=keep: ((out * k) ** 2).sum(), torch.abs)
            if sums is None:  # any other network: per-sample gradients with torch.func
                g = per_sample(params, x, keep)
                sums = {k: g[k].abs().sum(0) for k in total}
            for k in total:
                total[k] += sums[k]
        learner.train_mode()
        return {k: v / len(batch) for k, v in total.items()}

    def end_chunk(self, learner: Learner) -> None:
        if len(self.chunk_sample) == 0:
            return
        new = self.importance(learner, self.chunk_sample.all())
        if self.normalize:  # Ω_new / mean(Ω_new) over every parameter: λ is then the mean stiffness per chunk
            scale = torch.cat([v.flatten() for v in new.values()]).mean()
            if scale > 0:
                new = {k: v / scale for k, v in new.items()}
        # Ω ← Ω + Ω_new, anchored at the newest parameters (the paper's accumulation)
        self.penalty.consolidate(learner.model, new, mode="online", gamma=1.0)
        self.penalty.cap(self.mas_lambda, learner.lr)  # the stiffness cap: 2·lr·λ·Ω <= 1
        self.chunk_sample = ReservoirMemory(
            self.importance_samples, seed=derive_seed(learner.seed, f"mas-sample/{learner.n_observed}"),
            device=learner.device,
        )

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "chunk_sample": self.chunk_sample.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.chunk_sample.load_state_dict(state["chunk_sample"])


class MAS(Learner):
    """No memory. Terms: ``CE(batch) + MAS penalty``."""

    name = "mas"
    description = "memory aware synapses: output-sensitivity importance, quadratic penalty"
    paper = "Aljundi et al. 2018, Memory Aware Synapses (ECCV)"
    needs_boundaries = True

    def __init__(self, model: nn.Module, *, mas_lambda: float = 0.01, importance_samples: int = 1000,
                 normalize: bool = True, **base) -> None:
        super().__init__(model, **base)
        self.mas_lambda, self.importance_samples, self.normalize = mas_lambda, importance_samples, normalize
        self.compose(IncomingCE(), MASPenalty(mas_lambda=mas_lambda, importance_samples=importance_samples,
                                              normalize=normalize))
