"""Elastic weight consolidation (EWC) and online EWC.

Papers: Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017;
Schwarz et al., "Progress & Compress: A scalable framework for continual learning", ICML 2018
(online EWC).

The loss adds ``(λ/2)·Σ_k F_k (θ_k − θ*_k)²``. ``F`` is the diagonal Fisher information computed at
the end of each chunk: the mean over samples of the squared gradient of ``log p(y|x)``, with ``y``
drawn from the model's own predictive distribution (the true Fisher, not the empirical one; set
``fisher="empirical"`` to use the true labels). Per-sample gradients come from ``torch.func``.
With ``online=True`` a single Fisher is kept, ``F ← γF + F_new``, anchored at the newest θ*.

Settings: class-, task- and domain-incremental. It needs chunk boundaries (not task-free).

Deviations
----------
- The Fisher is estimated on a uniform sample (reservoir, ``fisher_samples``) of the chunk's
  training data rather than on all of it; the learner only ever sees its stream.
- The per-task penalties are folded into one quadratic with the same gradient
  (:class:`~lifelong.learn.terms.QuadraticPenalty`).
- The Fisher is capped at ``1/(lr·λ)`` (:meth:`QuadraticPenalty.cap`): above that, a plain SGD step
  on the penalty overshoots the anchor, and on Permuted Fashion-MNIST with lr 0.05 and λ = 100 the
  uncapped penalty diverges. The paper used other optimisers and learning rates and has no cap.

Limitation: many small domains
------------------------------
On 20 permuted domains of scikit-learn digits (about 72 training samples each, the dataset's 45
epochs per chunk; ``benchmarks/defaults_matrix.py``, stream ``digits-dil20``) EWC ends below naive
fine-tuning (seed 0: 0.189 against 0.351; seeds 0-2 naive 0.318). The penalty grows stiffer with
every domain faster than linearly: the per-chunk Fisher itself rises as the penalty holds the network
(a network that fits the new domain less confidently has a larger true Fisher), and by the 19th
boundary every head bias and a quarter of the head weights sit at the stiffness cap; the learning
accuracy falls from naive's 0.97 to 0.50. Nothing we tried lifts it above naive there (seed 0):
``ewc_lambda`` 1 / 10 / 100 give 0.342 / 0.299 / 0.189; online EWC with γ = 0.9 gives 0.245; a
running *mean* of the Fishers instead of their sum gives 0.257 (seeds 0-2, λ = 100) and 0.197
(λ = 300); lowering the cap to a tenth of the SGD limit gives 0.218, and the mean with that cap
0.310. SI (0.402) and L2 (0.389) beat naive there; MAS does not (0.273). With 5 permuted domains
(the ``fast-permuted-digits`` ledger suite) and on Permuted Fashion-MNIST, EWC's default beats
naive on every seed. We keep the paper's summed penalty and report this rather than tune it in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.persample import linear_sample_grad_sums
from lifelong.learn.terms import TERMS, IncomingCE, QuadraticPenalty, QuadraticTerm
from lifelong.seeding import derive_seed


@TERMS.register("ewc")
class EWCPenalty(QuadraticTerm):
    """``(λ/2)·Σ_k F_k (θ_k − θ*_k)²``, with the Fisher consolidated at each chunk boundary on a
    reservoir sample of the chunk (its options are EWC's hyper-parameters)."""

    name = "ewc"
    needs_boundaries = True

    def __init__(self, *, ewc_lambda: float = 100.0, online: bool = False, gamma: float = 1.0,
                 fisher: str = "true", fisher_samples: int = 1000) -> None:
        if fisher not in ("true", "empirical"):
            raise ConfigError(f"ewc: fisher must be 'true' or 'empirical', got {fisher!r}")
        self.ewc_lambda, self.online, self.gamma, self.fisher = ewc_lambda, online, gamma, fisher
        self.fisher_samples = fisher_samples

    def bind(self, learner: Learner) -> None:
        self.penalty = QuadraticPenalty()
        self.chunk_sample = ReservoirMemory(self.fisher_samples, seed=derive_seed(learner.seed, "fisher-sample"), device=learner.device)

    @property
    def strength(self) -> float:
        return 0.5 * self.ewc_lambda

    def after_update(self, ctx) -> None:
        self.chunk_sample.add(ctx.batch)

    def fisher_diagonal(self, learner: Learner, batch: Batch, chunk_size: int = 256) -> dict[str, Tensor]:
        """Mean squared per-sample gradient of ``log p(y|x)`` for each parameter."""
        model = learner.model
        params = {k: v.detach() for k, v in model.named_parameters()}
        n_out = learner.n_classes

        def log_prob(p, x, target, allowed):  # target: (C,) one-hot bool; indexing is not vmappable
            out = functional_call(model, p, (x.unsqueeze(0),))[0]
            out = out.masked_fill(~allowed, float("-inf"))
            return torch.where(target, F.log_softmax(out, 0), 0.0).sum()

        per_sample = vmap(grad(log_prob), in_dims=(None, 0, 0, 0))
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        model.eval()
        for s in range(0, len(batch), chunk_size):
            x = batch.x[s : s + chunk_size]
            task = batch.task[s : s + chunk_size] if batch.task is not None else None
            allowed = learner.allowed_classes(task, len(x))
            if self.fisher == "true":
                with torch.no_grad():
                    probs = F.softmax(model(x).masked_fill(~allowed, float("-inf")), 1)
                # drawn on the CPU generator (the same labels on every device)
                y = torch.multinomial(probs.cpu(), 1, generator=learner.generator).squeeze(1).to(x.device)
            else:
                y = batch.y[s : s + chunk_size]
            target = F.one_hot(y, n_out).bool()
            squares = linear_sample_grad_sums(  # one backward pass for an MLP (lifelong.learn.persample)
                model, x, lambda out, t=target, a=allowed: torch.where(t, F.log_softmax(out.masked_fill(~a, float("-inf")), 1), 0.0).sum(),
                torch.square)
            if squares is None:  # not an MLP of Linear layers: per-sample gradients with torch.func
                g = per_sample(params, x, target, allowed)
                squares = {k: (g[k] ** 2).sum(0) for k in total}
            for k in total:
                total[k] += squares[k]
        learner.train_mode()
        return {k: v / len(batch) for k, v in total.items()}

    def end_chunk(self, learner: Learner) -> None:
        if len(self.chunk_sample) == 0:
            return
        fisher = self.fisher_diagonal(learner, self.chunk_sample.all())
        self.penalty.consolidate(learner.model, fisher, mode="online" if self.online else "sum", gamma=self.gamma)
        self.penalty.cap(0.5 * self.ewc_lambda, learner.lr)  # the penalty is (λ/2)·F(θ−θ*)²
        self.chunk_sample = ReservoirMemory(self.fisher_samples,
                                            seed=derive_seed(learner.seed, f"fisher-sample/{learner.n_observed}"), device=learner.device)

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "chunk_sample": self.chunk_sample.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.chunk_sample.load_state_dict(state["chunk_sample"])


class EWC(Learner):
    """No memory. Terms: ``CE(batch) + EWC penalty``."""

    name = "ewc"
    description = "elastic weight consolidation: Fisher-weighted quadratic penalty (online option)"
    paper = "Kirkpatrick et al. 2017 (PNAS); online EWC: Schwarz et al. 2018"
    needs_boundaries = True

    def __init__(
        self,
        model: nn.Module,
        *,
        ewc_lambda: float = 100.0,
        online: bool = False,
        gamma: float = 1.0,
        fisher: str = "true",
        fisher_samples: int = 1000,
        **base,
    ) -> None:
        super().__init__(model, **base)
        self.ewc_lambda, self.online, self.gamma, self.fisher = ewc_lambda, online, gamma, fisher
        self.fisher_samples = fisher_samples
        self.compose(IncomingCE(), EWCPenalty(ewc_lambda=ewc_lambda, online=online, gamma=gamma, fisher=fisher,
                                              fisher_samples=fisher_samples))
