"""Sums over samples of element-wise functions of per-sample gradients, from one backward pass.

EWC's Fisher needs ``Σ_n (∂ℓ_n/∂θ)²`` and MAS's importance ``Σ_n |∂ℓ_n/∂θ|``. Generic per-sample
gradients (``torch.func.vmap``) materialise one copy of every parameter per sample. For a network
whose parameters all sit in ``nn.Linear`` layers applied to ``(B, features)`` inputs, the
per-sample weight gradient of a layer with input ``a_n`` and output gradient ``δ_n`` is the outer
product ``δ_n a_nᵀ``, and for ``φ`` = square or absolute value ``φ(δ_n,i · a_n,j) = φ(δ_n,i)·φ(a_n,j)``.
So ``Σ_n φ(δ_n a_nᵀ) = φ(δ)ᵀ φ(a)``, one matrix product, and the bias's sum is ``Σ_n φ(δ_n)``. The
samples do not interact (no batch statistics), so a single backward pass of ``Σ_n ℓ_n`` gives
every ``δ_n``. The numbers are those of the per-sample route, up to summation order.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> x = torch.randn(5, 3)
>>> sums = linear_sample_grad_sums(net, x, lambda out: (out ** 2).sum(), torch.abs)
>>> def one(i):
...     net.zero_grad()
...     (net(x[i : i + 1]) ** 2).sum().backward()
...     return net[0].weight.grad.abs().clone()
>>> bool(torch.allclose(sums["0.weight"], sum(one(i) for i in range(5)), atol=1e-5))
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lifelong.learn.nets import has_batch_statistics


def _linear_layer_pass(
    model: nn.Module, x: Tensor, objective: Callable[[Tensor], Tensor]
) -> tuple[dict[str, nn.Linear], dict[str, Tensor], tuple[Tensor, ...], Tensor] | None:
    """One forward pass of ``model`` on ``x`` and one backward pass of ``objective``: each linear
    layer's ``(B, in)`` inputs and the ``(B, out)`` gradients of the objective at its outputs, with
    the model's output; None when the model is not a stack of linear layers applied to flat rows
    (a parameter outside them, batch statistics, a layer unused or applied to sequences/images)."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {id(p) for m in linears.values() for p in m.parameters(recurse=False)}
    if any(id(p) not in owned for p in model.parameters()) or has_batch_statistics(model):
        return None
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(_m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
            inputs[name], outputs[name] = inp[0].detach(), out
        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in linears.items()]
    try:
        with torch.enable_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    if set(inputs) != set(linears) or any(inputs[n].dim() != 2 for n in linears):
        return None  # a layer not used, or used on sequences/images: take the generic route
    with torch.enable_grad():
        deltas = torch.autograd.grad(objective(out), [outputs[n] for n in linears])
    return linears, inputs, deltas, out


def linear_sample_grad_sums(
    model: nn.Module, x: Tensor, objective: Callable[[Tensor], Tensor], elementwise: Callable[[Tensor], Tensor],
) -> dict[str, Tensor] | None:
    """``{name: Σ_n φ(∂ℓ_n/∂θ)}`` for every parameter of ``model``, or None when the shortcut does
    not apply (a parameter outside ``nn.Linear``, batch statistics, inputs that are not 2-D).

    Parameters
    ----------
    model : nn.Module
    x : Tensor
        The ``(B, ...)`` inputs.
    objective : callable
        Maps the model's ``(B, C)`` output to ``Σ_n ℓ_n``; each ``ℓ_n`` must depend on row ``n`` only.
    elementwise : callable
        ``φ``: ``torch.square`` or ``torch.abs`` (any function with ``φ(ab) = φ(a)φ(b)``).
    """
    found = _linear_layer_pass(model, x, objective)
    if found is None:
        return None
    linears, inputs, deltas, _ = found
    sums: dict[str, Tensor] = {}
    for (name, m), d in zip(linears.items(), deltas, strict=True):
        prefix = f"{name}." if name else ""
        phi_d = elementwise(d.detach())  # (B, out)
        sums[prefix + "weight"] = phi_d.T @ elementwise(inputs[name])  # (out, in)
        if m.bias is not None:
            sums[prefix + "bias"] = phi_d.sum(0)
    return sums


def linear_sample_grad_gram(model: nn.Module, x: Tensor, objective: Callable[[Tensor], Tensor]) -> Tensor | None:
    """``(B, B)`` Gram matrix ``⟨∂ℓ_n/∂θ, ∂ℓ_m/∂θ⟩`` of the per-sample gradients over every
    parameter of ``model``, from one forward and one backward pass, or None when the shortcut does
    not apply (as :func:`linear_sample_grad_sums`).

    A layer's per-sample weight gradient is ``δ_n a_nᵀ``, so ``⟨δ_n a_nᵀ, δ_m a_mᵀ⟩ = (δ_n·δ_m)(a_n·a_m)``
    and the bias adds ``δ_n·δ_m``: the Gram matrix is ``Σ_layers (Δ Δᵀ) ∘ (A Aᵀ + 1)`` without any
    per-sample gradient being formed.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> x = torch.randn(5, 3)
    >>> gram = linear_sample_grad_gram(net, x, lambda out: (out ** 2).sum())
    >>> def flat(i):
    ...     net.zero_grad()
    ...     (net(x[i : i + 1]) ** 2).sum().backward()
    ...     return torch.cat([p.grad.flatten() for p in net.parameters()])
    >>> g = torch.stack([flat(i) for i in range(5)])
    >>> bool(torch.allclose(gram, g @ g.T, atol=1e-4))
    True
    """
    if any(not p.requires_grad for p in model.parameters()):
        return None
    found = _linear_layer_pass(model, x, objective)
    if found is None:
        return None
    linears, inputs, deltas, out = found
    gram = torch.zeros(len(x), len(x), dtype=out.dtype, device=out.device)
    for (name, m), d in zip(linears.items(), deltas, strict=True):
        a = inputs[name]
        dd = d.detach() @ d.detach().T
        gram += dd * (a @ a.T + (1.0 if m.bias is not None else 0.0))
    return gram
