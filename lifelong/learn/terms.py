"""Loss terms: the objectives a learner adds up in one SGD step.

A composed method is its memory plus a list of terms. :meth:`lifelong.learn.base.Learner.update`
evaluates the terms in order on a :class:`StepContext` (the learner, the incoming batch and the
network's logits on it), sums their values left to right (``((t0 + t1) + t2) …``: the order of a
floating-point sum is part of a method's exact results), and takes one SGD step. ``terms[0]`` is
the loss on the incoming batch; its value is the loss the train record reports.

Which terms a method uses is its own choice (its file says so). A run adds more through the
keyword-only hyper-parameter ``terms`` of every composable learner, one table per term::

    [learner]
    name = "er"

    [[learner.terms]]
    name = "ewc"          # a key of TERMS
    ewc_lambda = 10.0     # that term's own options

The registered terms are listed in :data:`TERMS`; each method module may register the terms it
defines (EWC's penalty lives in :mod:`lifelong.learn.methods.ewc`, and so on).

Examples
--------
>>> build_terms([{"name": "no_such_term"}], owner="er")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: er: unknown loss term 'no_such_term'; ...
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.options import check_options
from lifelong.registry import Registry

if TYPE_CHECKING:
    from lifelong.learn.base import Learner


@dataclass
class StepContext:
    """What a term sees in one step.

    ``logits`` is ``learner.model(batch.x)``, (B, n_classes), computed once before any term runs;
    ``loss`` is set by :meth:`~lifelong.learn.base.Learner.update` to the value of the first term
    (the incoming batch's loss, without replay or penalties). ``replays`` maps ``id(term)`` to the
    replay batches that term drew (:meth:`Term.draw`) with their logits, when
    :meth:`~lifelong.learn.base.Learner.context` ran their forward pass together with the incoming
    batch's; a term missing from it draws and forwards on its own (:meth:`Term.replayed`).
    """

    learner: Learner
    batch: Batch
    logits: Tensor
    loss: Tensor | None = None
    replays: dict[int, list[tuple[Batch, Tensor]]] = field(default_factory=dict)
    #: the network's input for ``logits``: ``batch.x`` augmented where the learner augments
    #: (``None``: ``batch.x`` itself); a term that runs another network on the incoming batch
    #: (LwF's teacher) uses it, so both see the same images. The replay batches in ``replays``
    #: hold their augmented inputs.
    inputs: Tensor | None = None

    @property
    def x(self) -> Tensor:
        """The incoming inputs the logits were computed on."""
        return self.batch.x if self.inputs is None else self.inputs


class Term:
    """One objective of a learner's update. Subclasses define :meth:`__call__` and, if they keep
    state, :meth:`bind`, the hooks and the state dict.

    The learner calls, per step: every term's ``__call__`` (summed into one loss), backward,
    every ``after_backward``, then the ``separate`` terms' values (each backpropagated on its own,
    so that ``after_backward`` saw the gradient of the others alone: SI's path integral needs
    that), the optimiser step, and every ``after_update``. At a chunk boundary it calls every
    ``end_chunk``. Options are keyword-only constructor arguments, stored under their own names.
    """

    #: the key in :data:`TERMS` (and in the learner's state dict)
    name: ClassVar[str] = ""
    #: True when :meth:`end_chunk` changes the term's state (a learner using it needs boundaries)
    needs_boundaries: ClassVar[bool] = False
    #: True: backpropagated after ``after_backward``, apart from the summed loss
    separate: ClassVar[bool] = False
    #: True when the term trains on replay batches it draws in :meth:`draw` (their forward pass can
    #: then share one call with the incoming batch's)
    draws: ClassVar[bool] = False

    def bind(self, learner: Learner) -> None:
        """Allocate state from the learner's base attributes (model, seed, n_classes, lr); called
        once, while the learner is constructed."""

    def __call__(self, ctx: StepContext) -> Tensor | None:
        """The term's scalar value, or None when it contributes nothing this step (nothing is
        added, so an inactive term leaves the loss bit-for-bit unchanged)."""
        raise NotImplementedError

    def draw(self, learner: Learner, n_incoming: int) -> list[Batch]:
        """The replay batches this step trains on (none: an empty list), drawn before any forward
        pass of the step; only for terms with ``draws = True``."""
        return []

    def replayed(self, ctx: StepContext) -> list[tuple[Batch, Tensor]]:
        """This term's replay batches of the step with their logits ``(b, n_classes)``: those
        :meth:`~lifelong.learn.base.Learner.context` drew and forwarded with the incoming batch, or,
        for a context built without them, drawn now and forwarded one by one."""
        pairs = ctx.replays.get(id(self))
        if pairs is None:
            augmented = getattr(ctx.learner, "augmented", lambda x: x)
            pairs = []
            for b in self.draw(ctx.learner, len(ctx.batch)):
                b = replace(b, x=augmented(b.x))
                pairs.append((b, ctx.learner.model(b.x)))
        return pairs

    def after_backward(self, ctx: StepContext) -> None:
        """Called after the summed loss's backward pass, before the separate terms and the step."""

    def after_update(self, ctx: StepContext) -> None:
        """Called after the optimiser step."""

    def end_chunk(self, learner: Learner) -> None:
        """Boundary work (a penalty's consolidation); never called in task-free streams."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


#: Terms a run may add to a composable learner through ``terms = [{name = ..., ...}]``.
TERMS: Registry = Registry("loss term")


def term_options(cls: type[Term]) -> dict[str, object]:
    """The keyword-only options of a term class, with their defaults."""
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _known_terms() -> str:
    return "; ".join(f"{n} ({', '.join(term_options(c)) or 'no options'})" for n, c in sorted(TERMS.items()))


def build_terms(entries: Sequence[Mapping[str, Any]] | None, *, owner: str) -> list[Term]:
    """Terms from their config tables (``{"name": ..., **options}``); errors name the known terms
    and their options.

    Examples
    --------
    >>> build_terms(None, owner="er")
    []
    """
    if entries is None:
        return []
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigError(f"{owner}: terms must be a list of tables such as [{{name = \"ewc\"}}], got {entries!r}")
    out: list[Term] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{owner}: terms[{i}] must be a table with a string `name`, got {entry!r}; "
                              f"known terms (options): {_known_terms()}")
        name = entry["name"]
        if name not in TERMS:
            raise ConfigError(f"{owner}: unknown loss term {name!r}; known terms (options): {_known_terms()}")
        cls = TERMS[name]
        options = check_options(cls.__init__, {k: v for k, v in entry.items() if k != "name"},
                                where=f"{owner}: term {name!r}")
        out.append(cls(**options))
    return out


# -- the terms every replay method shares ---------------------------------------------------------
class IncomingCE(Term):
    """``CE(f(x), y)`` on the incoming batch, task-masked where the scenario declares tasks."""

    name = "ce"

    def __call__(self, ctx: StepContext) -> Tensor:
        return ctx.learner.ce(ctx.logits, ctx.batch.y, ctx.batch.task)


@TERMS.register("replay_ce")
class ReplayCE(Term):
    """``weight·CE(f(x_m), y_m)`` on ``replay_batch`` samples (default: the incoming batch size)
    drawn from the learner's memory with the learner's generator; nothing while it is empty.

    ER's replay term; as an added term it needs a learner with a replay memory.
    """

    name = "replay_ce"
    draws = True

    def __init__(self, *, weight: float = 1.0, replay_batch: int | None = None) -> None:
        if replay_batch is not None and replay_batch < 1:
            raise ConfigError(f"replay_ce: replay_batch must be >= 1, got {replay_batch}")
        self.weight, self.replay_batch = weight, replay_batch

    def draw(self, learner: Learner, n_incoming: int) -> list[Batch]:
        if learner.memory is None:
            raise ConfigError(f"{learner.name}: the replay_ce term replays from the learner's memory and "
                              f"{learner.name!r} has none; use a replay learner such as er")
        if not len(learner.memory):
            return []
        return [learner.memory.sample(self.replay_batch or n_incoming, learner.generator)]

    def __call__(self, ctx: StepContext) -> Tensor | None:
        pairs = self.replayed(ctx)
        if not pairs:
            return None
        mb, logits = pairs[0]
        loss = ctx.learner.ce(logits, mb.y, mb.task)
        return loss if self.weight == 1.0 else self.weight * loss


# -- the building blocks of penalties and distillation ---------------------------------------------
class QuadraticPenalty:
    """``Σ_k Ω_k (θ_k − θ*_k)²`` over the named parameters of a model.

    Several consolidations are folded into one (importance, anchor) pair:
    ``Σ_t Ω_t (θ − a_t)² = Ω (θ − a)² + const`` with ``Ω = Σ_t Ω_t`` and
    ``a = Σ_t Ω_t a_t / Ω``. The gradient is exact; only an additive constant is dropped.
    ``mode="online"`` instead keeps ``Ω ← γΩ + Ω_new`` with the newest anchor (online EWC).

    Examples
    --------
    >>> net = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad(): _ = net.weight.fill_(1.0)
    >>> pen = QuadraticPenalty()
    >>> pen.consolidate(net, {"weight": torch.tensor([[2.0]])})
    >>> with torch.no_grad(): _ = net.weight.fill_(3.0)
    >>> float(pen(net).detach())  # 2 * (3 - 1)^2
    8.0
    """

    def __init__(self) -> None:
        self.importance: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}
        self._fused: tuple | None = None  # add_grad's factors, rebuilt when importance or anchor change

    def __bool__(self) -> bool:
        return bool(self.importance)

    def consolidate(self, model: nn.Module, importance: dict[str, Tensor], *, mode: str = "sum", gamma: float = 1.0) -> None:
        self._fused = None
        for name, p in model.named_parameters():
            if name not in importance:
                continue
            new_w, theta = importance[name].detach(), p.detach().clone()
            if name not in self.importance or mode == "replace":
                self.importance[name], self.anchor[name] = new_w.clone(), theta
            elif mode == "online":
                self.importance[name] = gamma * self.importance[name] + new_w
                self.anchor[name] = theta
            elif mode == "sum":
                old_w, old_a = self.importance[name], self.anchor[name]
                total = old_w + new_w
                safe = torch.where(total > 0, total, torch.ones_like(total))
                self.anchor[name] = torch.where(total > 0, (old_w * old_a + new_w * theta) / safe, theta)
                self.importance[name] = total
            else:
                raise ValueError(f"unknown consolidation mode {mode!r}")

    def cap(self, strength: float, lr: float) -> None:
        """Clamp every importance at ``1/(2·lr·strength)`` (the stiffness cap).

        The penalty ``strength·Ω(θ − a)²`` contributes ``2·lr·strength·Ω·(θ − a)`` to a plain SGD
        step. Above the cap that step overshoots the anchor, and past twice the cap SGD diverges.
        Capped, one penalty step moves a weight at most back to its anchor.
        """
        self._fused = None
        if strength > 0:
            for w in self.importance.values():
                w.clamp_(max=1.0 / (2.0 * lr * strength))

    def __call__(self, model: nn.Module) -> Tensor:
        total = torch.zeros(())
        for name, p in model.named_parameters():
            if name in self.importance:
                total = total + (self.importance[name] * (p - self.anchor[name]) ** 2).sum()
        return total

    @torch.no_grad()
    def add_grad(self, model: nn.Module, strength: float) -> None:
        """Add the exact gradient of ``strength·Σ_k Ω_k (θ_k − θ*_k)²`` to every parameter's
        ``.grad``, without autograd: ``2·strength·Ω∘θ − 2·strength·Ω∘θ*``, whose two factors are
        kept from the last consolidation, so a step costs two fused element-wise passes (the same
        numbers as backpropagating :meth:`__call__`, up to rounding)."""
        if self._fused is None or self._fused[0] != strength:
            names = [k for k, _ in model.named_parameters() if k in self.importance]
            scaled = [2.0 * strength * self.importance[k] for k in names]
            self._fused = (strength, names, scaled, [w * self.anchor[k] for w, k in zip(scaled, names, strict=True)])
        _, names, scaled, pull = self._fused
        if not names:
            return
        params = dict(model.named_parameters())
        ps = [params[k] for k in names]
        for p in ps:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in ps]
        torch._foreach_addcmul_(grads, scaled, ps)
        torch._foreach_sub_(grads, pull)

    def state_dict(self) -> dict:
        return {"importance": dict(self.importance), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict) -> None:
        self.importance, self.anchor = dict(state["importance"]), dict(state["anchor"])
        self._fused = None


class QuadraticTerm(Term):
    """A term whose loss is ``strength·Σ_k Ω_k (θ_k − θ*_k)²`` (:class:`QuadraticPenalty`): EWC,
    SI, MAS and L2.

    Its gradient is closed-form, so the term adds it in :meth:`after_backward`
    (:meth:`QuadraticPenalty.add_grad`) rather than through autograd: ``__call__`` contributes no
    loss to the backward pass, and :meth:`value` gives the penalty's value for inspection. The
    SGD step is the one of the summed loss; only the autograd graph over every parameter is saved.
    Subclasses set ``self.penalty`` in :meth:`bind` and define :attr:`strength`.
    """

    penalty: QuadraticPenalty

    @property
    def strength(self) -> float:
        raise NotImplementedError

    def value(self, ctx: StepContext) -> Tensor | None:
        """The penalty's value at the current parameters (None before the first consolidation)."""
        return self.strength * self.penalty(ctx.learner.model) if self.penalty else None

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return None  # the gradient is added in after_backward

    def after_backward(self, ctx: StepContext) -> None:
        if self.penalty:
            self.penalty.add_grad(ctx.learner.model, self.strength)


def distillation(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Li & Hoiem's knowledge-distillation loss: cross-entropy between the temperature-softened
    teacher and student distributions, averaged over the batch.

    Examples
    --------
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> bool(distillation(z, z, 2.0) > 0)  # equals the teacher's entropy, not zero
    True
    """
    target = F.softmax(teacher / temperature, dim=1)
    return -(target * F.log_softmax(student / temperature, dim=1)).sum(1).mean()
