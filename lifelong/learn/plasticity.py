"""Remedies for lost plasticity, as loss terms any composable learner can take.

They add no loss (``__call__`` gives ``None``); they act on the parameters in their hooks. Every
random draw comes from the learner's own generator (``learner.generator``), so a run stays
reproducible from its seed, and each keeps its counters in its state dict. They need a network whose
hidden units are ``nn.Linear`` → ``nn.ReLU`` layers (:func:`lifelong.evaluate.plasticity.relu_units`:
the MLPs of :mod:`lifelong.learn.nets`).

``redo``
    Sokar, Agarwal, Castro & Evci, "The Dormant Neuron Phenomenon in Deep Reinforcement Learning"
    (ICML 2023). Every ``every`` updates, the τ-dormant units (normalised mean activation ``≤ tau``)
    get fresh incoming weights and bias, drawn from the layer's initial distribution, and their
    outgoing weights are set to zero, so the network's output is unchanged at the moment of the
    reset; their optimiser state (SGD momentum) is zeroed too.
``shrink_perturb``
    Ash & Adams, "On Warm-Starting Neural Network Training" (NeurIPS 2020). At every chunk boundary
    (or every ``every`` updates, for task-free streams) every parameter becomes
    ``θ ← shrink·θ + noise·ε``, ``ε ~ N(0, 1)``.
``continual_backprop``
    Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton, "Loss of plasticity in deep continual
    learning" (Nature 2024). Each hidden unit keeps a running contribution utility
    ``u ← η·u + (1 − η)·E_x|h_i(x)|·Σ_k |w_ki|`` and an age; after every update the units older than
    ``maturity`` are eligible, ``replacement_rate`` × (number eligible) units are due per update
    (accumulated until at least one is due), and the lowest-utility eligible units are replaced
    as in ReDo (fresh incoming weights, zero outgoing weights, utility and age zero).

Deviations
----------
- The activations are measured on the step's incoming batch, with a second (gradient-free, eval
  mode) forward pass after the update: ReDo scores a batch sampled from the RL replay buffer, and
  continual backprop reads the activations of the step's own forward pass.
- Only fully connected ReLU layers are handled (no convolutional channels, no other activations).
- ReDo and continual backprop redraw the bias of a reset unit from the initial distribution
  (ReDo's reference code keeps its initial-distribution draw too; continual backprop's sets it
  to zero) and zero the outgoing weights; continual backprop does not add the removed unit's mean
  contribution to the next layer's bias (the paper's bias correction) and uses the plain running
  average of the contribution, without the paper's bias-correction of the running average.
- Shrink-and-perturb's noise is ``N(0, noise²)`` for every parameter, not noise scaled to each
  layer's initialisation.
- The defaults (``every = 1000``, ``tau = 0.1``; ``shrink = 0.8``, ``noise = 0.01``;
  ``replacement_rate = 1e-4``, ``decay = 0.99``, ``maturity = 100``) are this library's choices and
  were not tuned on the benchmark of ``benchmarks/plasticity.py``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError
from lifelong.evaluate.plasticity import ReluUnits, dormant_masks, relu_units, unit_activity
from lifelong.learn.terms import TERMS, StepContext, Term

if TYPE_CHECKING:
    from lifelong.learn.base import Learner


@torch.no_grad()
def reset_units(learner: Learner, layer: ReluUnits, idx: Tensor) -> None:
    """Give units ``idx`` of ``layer`` fresh incoming weights and bias (PyTorch's default
    ``nn.Linear`` distribution, ``U(±1/√fan_in)``, drawn from ``learner.generator``), zero their
    outgoing weights, and zero the SGD momentum of every entry that was reset."""
    if idx.numel() == 0:
        return
    lin, out = layer.incoming, layer.outgoing
    bound = 1.0 / math.sqrt(lin.in_features)
    w = torch.empty(len(idx), lin.in_features).uniform_(-bound, bound, generator=learner.generator)
    lin.weight[idx] = w.to(lin.weight)
    if lin.bias is not None:
        b = torch.empty(len(idx)).uniform_(-bound, bound, generator=learner.generator)
        lin.bias[idx] = b.to(lin.bias)
    if out is not None:
        out.weight[:, idx] = 0.0
    state = learner.opt.state
    for p, sel in ((lin.weight, (idx,)), (lin.bias, (idx,)), (out.weight if out is not None else None, (slice(None), idx))):
        if p is not None and "momentum_buffer" in state.get(p, {}) and state[p]["momentum_buffer"] is not None:
            state[p]["momentum_buffer"][sel] = 0.0


def _positive(name: str, **values: float) -> None:
    for k, v in values.items():
        if not v > 0:
            raise ConfigError(f"{name}: {k} must be > 0, got {v}")


@TERMS.register("redo")
class ReDo(Term):
    """Recycle τ-dormant ReLU units every ``every`` updates (Sokar et al. 2023).

    Examples
    --------
    >>> from lifelong.learn.base import Learner
    >>> from lifelong.learn.nets import mlp
    >>> learner = Learner(mlp((4,), 3, hidden=(8,), seed=0), terms=[{"name": "redo", "every": 10}])
    >>> [t.name for t in learner.loss_terms], learner.needs_boundaries
    (['ce', 'redo'], False)
    """

    name = "redo"

    def __init__(self, *, every: int = 1000, tau: float = 0.1) -> None:
        if every < 1:
            raise ConfigError(f"redo: every must be >= 1, got {every}")
        if tau < 0:
            raise ConfigError(f"redo: tau must be >= 0, got {tau}")
        self.every, self.tau = every, tau
        self.steps = 0
        self.n_reset = 0  # units recycled so far

    def bind(self, learner: Learner) -> None:
        self.units = relu_units(learner.model)

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return None

    def recycle(self, learner: Learner, x: Tensor) -> int:
        """Reset the units dormant on ``x`` now; returns how many were reset."""
        masks = dormant_masks(unit_activity(learner.model, x, self.units), self.tau)
        n = 0
        for layer, m in zip(self.units, masks, strict=True):
            idx = m.nonzero().flatten()
            reset_units(learner, layer, idx)
            n += len(idx)
        self.n_reset += n
        return n

    def after_update(self, ctx: StepContext) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.recycle(ctx.learner, ctx.x)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "n_reset": self.n_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.n_reset = int(state["steps"]), int(state["n_reset"])


@TERMS.register("shrink_perturb")
class ShrinkPerturb(Term):
    """``θ ← shrink·θ + noise·ε`` at each chunk boundary, or every ``every`` updates (Ash & Adams
    2020).

    Examples
    --------
    >>> from lifelong.learn.base import Learner
    >>> from lifelong.learn.nets import mlp
    >>> Learner(mlp((4,), 3, hidden=(8,)), terms=[{"name": "shrink_perturb"}]).needs_boundaries
    True
    >>> Learner(mlp((4,), 3, hidden=(8,)), terms=[{"name": "shrink_perturb", "every": 50}]).needs_boundaries
    False
    """

    name = "shrink_perturb"
    needs_boundaries = True

    def __init__(self, *, shrink: float = 0.8, noise: float = 0.01, every: int | None = None) -> None:
        if not 0 < shrink <= 1:
            raise ConfigError(f"shrink_perturb: shrink must be in (0, 1], got {shrink}")
        if noise < 0:
            raise ConfigError(f"shrink_perturb: noise must be >= 0, got {noise}")
        if every is not None and every < 1:
            raise ConfigError(f"shrink_perturb: every must be >= 1 (or omitted: at chunk boundaries), got {every}")
        self.shrink, self.noise, self.every = shrink, noise, every
        self.needs_boundaries = every is None  # type: ignore[misc]  # per instance
        self.steps = 0
        self.n_applied = 0

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return None

    @torch.no_grad()
    def apply(self, learner: Learner) -> None:
        """One shrink-and-perturb of every parameter of ``learner.model``."""
        for p in learner.model.parameters():
            p.mul_(self.shrink)
            if self.noise > 0:
                eps = torch.randn(p.shape, generator=learner.generator)
                p.add_(eps.to(p), alpha=self.noise)
        self.n_applied += 1

    def after_update(self, ctx: StepContext) -> None:
        self.steps += 1
        if self.every is not None and self.steps % self.every == 0:
            self.apply(ctx.learner)

    def end_chunk(self, learner: Learner) -> None:
        if self.every is None:
            self.apply(learner)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "n_applied": self.n_applied}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.n_applied = int(state["steps"]), int(state["n_applied"])


@TERMS.register("continual_backprop")
class ContinualBackprop(Term):
    """Replace the lowest-utility mature hidden units at a slow rate (Dohare et al. 2024).

    Examples
    --------
    >>> from lifelong.learn.base import Learner
    >>> from lifelong.learn.nets import mlp
    >>> learner = Learner(mlp((4,), 3, hidden=(8, 8)), terms=[{"name": "continual_backprop"}])
    >>> [tuple(u.shape) for u in learner.loss_terms[1].utility]
    [(8,), (8,)]
    """

    name = "continual_backprop"

    def __init__(self, *, replacement_rate: float = 1e-4, decay: float = 0.99, maturity: int = 100) -> None:
        _positive("continual_backprop", replacement_rate=replacement_rate)
        if not 0 <= decay < 1:
            raise ConfigError(f"continual_backprop: decay must be in [0, 1), got {decay}")
        if maturity < 0:
            raise ConfigError(f"continual_backprop: maturity must be >= 0, got {maturity}")
        self.replacement_rate, self.decay, self.maturity = replacement_rate, decay, maturity
        self.n_reset = 0

    def bind(self, learner: Learner) -> None:
        self.units = relu_units(learner.model)
        self.utility = [torch.zeros(u.size) for u in self.units]
        self.age = [torch.zeros(u.size, dtype=torch.long) for u in self.units]
        self.due = [0.0 for _ in self.units]  # replacements accumulated, not yet made

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return None

    @torch.no_grad()
    def after_update(self, ctx: StepContext) -> None:
        learner = ctx.learner
        activity = unit_activity(learner.model, ctx.x, self.units)  # E|h_i| per layer, (H,)
        for k, (layer, a) in enumerate(zip(self.units, activity, strict=True)):
            out = layer.outgoing
            contrib = a.cpu() * (out.weight.detach().abs().sum(0).cpu() if out is not None else 1.0)
            self.utility[k].mul_(self.decay).add_(contrib, alpha=1 - self.decay)
            self.age[k] += 1
            eligible = (self.age[k] > self.maturity).nonzero().flatten()
            if len(eligible) == 0:
                continue
            self.due[k] += self.replacement_rate * len(eligible)
            n = min(int(self.due[k]), len(eligible))
            if n == 0:
                continue
            self.due[k] -= n
            order = torch.argsort(self.utility[k][eligible], stable=True)
            idx = eligible[order[:n]]
            reset_units(learner, layer, idx.to(layer.incoming.weight.device))
            self.utility[k][idx] = 0.0
            self.age[k][idx] = 0
            self.n_reset += n

    def state_dict(self) -> dict[str, Any]:
        return {"utility": [u.clone() for u in self.utility], "age": [a.clone() for a in self.age],
                "due": list(self.due), "n_reset": self.n_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.utility = [u.clone() for u in state["utility"]]
        self.age = [a.clone() for a in state["age"]]
        self.due = [float(d) for d in state["due"]]
        self.n_reset = int(state["n_reset"])
