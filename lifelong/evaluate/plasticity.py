"""Measurements of lost plasticity: dormant ReLU units and the effective rank of features.

``dormant_fraction``
    Sokar et al., "The Dormant Neuron Phenomenon in Deep Reinforcement Learning" (ICML 2023, ReDo).
    Unit ``i`` of a hidden layer ``l`` with ``H_l`` units has the score
    ``s_i = E_x|h_i(x)| / ((1/H_l) Σ_k E_x|h_k(x)|)`` (its mean activation normalised by the layer's
    mean); it is *τ-dormant* when ``s_i ≤ τ``. The fraction is over every hidden ReLU unit of the
    network (all layers pooled). With ``τ = 0`` it counts the units that are exactly zero on every
    input of ``x`` (dead ReLUs).
``effective_rank``
    Roy & Vetterli, "The effective rank: a measure of effective dimensionality" (EUSIPCO 2007):
    with the singular values ``σ_k`` of the feature matrix and ``p_k = σ_k / Σ_j σ_j``,
    ``erank = exp(−Σ_k p_k log p_k)`` (``0 log 0 = 0``). Lyle et al. (2022) and Kumar et al. (2021,
    "implicit under-parameterisation") use it, or its thresholded variant ``srank``, on the
    penultimate features; this module gives the entropy form only.

Deviations: the hidden units are found structurally, as the outputs of an ``nn.ReLU`` module
that follows an ``nn.Linear`` in the model's module order (the MLPs of :mod:`lifelong.learn.nets`);
convolutional channels and functional ReLUs are not found (:func:`relu_units` raises a
``ConfigError`` when the model has none). A layer whose units are all zero has every unit dormant
(its mean is zero; the paper's ratio is undefined there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError


@dataclass(frozen=True)
class ReluUnits:
    """One hidden layer: ``incoming`` computes its pre-activations, ``relu`` its units and
    ``outgoing`` (the next ``nn.Linear``, ``None`` when there is none) reads them."""

    name: str
    incoming: nn.Linear
    relu: nn.Module
    outgoing: nn.Linear | None

    @property
    def size(self) -> int:
        return int(self.incoming.out_features)


def relu_units(model: nn.Module) -> list[ReluUnits]:
    """The hidden ReLU layers of ``model``, in module order (a ``Linear`` directly followed by a
    ``ReLU``; the next ``Linear`` is the outgoing layer).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> [(u.name, u.size, u.outgoing is net[2]) for u in relu_units(net)]
    [('1', 4, True)]
    """
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    out: list[ReluUnits] = []
    for i in range(len(leaves) - 1):
        (_, lin), (rname, relu) = leaves[i], leaves[i + 1]
        if isinstance(lin, nn.Linear) and isinstance(relu, nn.ReLU):
            nxt = next((m for _, m in leaves[i + 2:] if isinstance(m, nn.Linear)), None)
            if nxt is not None and nxt.in_features != lin.out_features:
                nxt = None  # not a plain chain: do not guess which inputs are this layer's
            out.append(ReluUnits(rname, lin, relu, nxt))
    if not out:
        raise ConfigError(f"{type(model).__name__} has no hidden nn.Linear → nn.ReLU layer; the plasticity "
                          f"measurements and remedies need an MLP such as lifelong.learn.nets.mlp")
    return out


@torch.no_grad()
def unit_activity(model: nn.Module, x: Tensor, units: list[ReluUnits] | None = None) -> list[Tensor]:
    """``E_x|h_i(x)|`` for every unit of every hidden layer: one ``(H_l,)`` tensor per layer, from
    one forward pass over ``x`` in eval mode (the mode is restored)."""
    units = relu_units(model) if units is None else units
    acts: dict[int, Tensor] = {}
    hooks = [u.relu.register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, o.detach().abs().mean(0)))
             for k, u in enumerate(units)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [acts[k].reshape(-1) for k in range(len(units))]


def dormant_masks(activity: list[Tensor], tau: float) -> list[Tensor]:
    """Per layer, the boolean mask of τ-dormant units from :func:`unit_activity`'s means."""
    masks = []
    for a in activity:
        mean = a.mean()
        masks.append(torch.ones_like(a, dtype=torch.bool) if mean <= 0 else a / mean <= tau)
    return masks


def dormant_fraction(model: nn.Module, x: Tensor, tau: float = 0.0) -> float:
    """The fraction of hidden ReLU units that are τ-dormant on the inputs ``x`` (ReDo's score).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])); _ = net[0].bias.zero_()
    >>> dormant_fraction(net, torch.tensor([[1.0], [2.0]]))  # unit 1 is -x: never active
    0.5
    """
    masks = dormant_masks(unit_activity(model, x), tau)
    return float(sum(int(m.sum()) for m in masks)) / sum(m.numel() for m in masks)


def effective_rank(features: Tensor) -> float:
    """Roy & Vetterli's effective rank ``exp(H(σ/Σσ))`` of a ``(N, D)`` feature matrix.

    Examples
    --------
    >>> effective_rank(torch.eye(3))
    3.0
    >>> effective_rank(torch.ones(4, 2))  # rank one
    1.0
    """
    if features.dim() != 2:
        raise ConfigError(f"effective_rank needs an (N, D) matrix, got shape {tuple(features.shape)}")
    s = torch.linalg.svdvals(features.detach().double())
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return round(float(torch.exp(-(p * p.log()).sum())), 12)
