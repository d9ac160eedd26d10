"""The learner contract, and the :class:`Learner` base class every method here builds on.

The contract (:class:`LearnerProtocol`) is what the loop, the server and the checks use:
``observe``, ``predict``, ``end_chunk`` and the state dict, plus three declared attributes (``name``,
``data_view``, ``needs_boundaries``) and ``n_classes``. Optional capabilities are separate
protocols, discovered with ``isinstance``: :class:`DriftAware` (``on_drift``),
:class:`MemoryUpdater` (``update_memory``, a gradient-free fast path) and :class:`Consolidator`
(``consolidate``, one step of a sleep block).

A method is a small class: keyword-only hyper-parameters stored under their own names, its memory,
and the loss terms (:mod:`lifelong.learn.terms`) that :meth:`Learner.update` adds up; a method with
an update rule of its own writes ``observe`` (with :meth:`Learner.record_seen` and the pure
:meth:`Learner.stats`) and sets ``composable = False``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import CheckpointError, ConfigError, DataError, LifelongError
from lifelong.learn.augment import build_augment
from lifelong.learn.memory import TensorMemory
from lifelong.learn.nets import has_batch_statistics, model_device
from lifelong.learn.terms import IncomingCE, StepContext, Term, build_terms
from lifelong.registry import Registry
from lifelong.seeding import derive_seed

#: Registered learners by short name. :mod:`lifelong.learn.methods` fills it with every method it
#: finds; it lives here so that a method (error_memory builds an inner learner) can read it
#: without importing the package that imports it.
LEARNERS: Registry = Registry("learner")


#: ``[train] precision``: the autocast dtype of each (None: no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_compile_backend(backend: str, device: torch.device) -> None:
    """Raise :class:`ConfigError` when ``torch.compile(backend=backend)`` visibly cannot run on
    ``device``: TorchDynamo unsupported on this Python, an unknown backend, or inductor on the CPU
    without a C++ compiler (``$CXX``, else ``g++``/``c++``/``clang++`` on the PATH)."""
    import shutil

    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(f"[train] compile = true: torch.compile is not supported on this Python ({sys.version.split()[0]}) "
                          f"with torch {torch.__version__}; set compile = false")
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise ConfigError(f"[train] compile: unknown torch.compile backend {backend!r}; known: "
                          f"{', '.join(torch._dynamo.list_backends(exclude_tags=()))}")
    if backend == "inductor" and device.type == "cpu":
        cxx = os.environ.get("CXX")
        if not (shutil.which(cxx) if cxx else any(shutil.which(c) for c in ("g++", "c++", "clang++"))):
            raise ConfigError("[train] compile = true: torch.compile's inductor backend needs a C++ compiler for the "
                              f"CPU, and {'$CXX (' + cxx + ')' if cxx else 'none of g++, c++, clang++'} is on the PATH; "
                              "install one (e.g. apt-get install g++) or set compile = false")


class TrainingDiverged(LifelongError):
    """The loss became NaN or infinite: the hyper-parameters make SGD diverge."""


@dataclass(frozen=True)
class StepStats:
    """Raw counts on the incoming batch, measured by the forward pass before the update."""

    n: int
    n_correct: int
    loss_sum: float


@dataclass(frozen=True)
class SleepStats(StepStats):
    """The counts of one consolidation step, and where its batch came from: ``"memory"`` (sampled
    from the learner's replay memory) or ``"rehearsal"`` (the sleep chunk's own batch)."""

    source: str = "rehearsal"


@runtime_checkable
class LearnerProtocol(Protocol):
    """What every learner provides; the loop and the server need nothing else.

    ``data_view`` is ``"stream"`` (train on the chunks as they come), ``"cumulative"`` or
    ``"joint"`` (oracles: the loop builds the union views). ``needs_boundaries`` is True exactly
    when ``end_chunk`` does work (changes the state dict); such a method degrades in task-free
    streams, where ``end_chunk`` is never called.
    """

    name: str
    data_view: str
    needs_boundaries: bool
    n_classes: int

    def observe(self, batch: Batch) -> StepStats:
        """One update on ``batch``; the counts are measured before the update."""
        ...

    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """``(B, n_classes)`` logits; no training, no change of state that alters later results."""
        ...

    def end_chunk(self) -> None:
        """Boundary work; never called in task-free streams."""
        ...

    def state_dict(self) -> dict:
        ...

    def load_state_dict(self, state: dict) -> None:
        ...


@runtime_checkable
class DriftAware(Protocol):
    """A learner that responds to an external drift alarm (e.g. the serving worker's detector)."""

    def on_drift(self) -> None:
        ...


@runtime_checkable
class MemoryUpdater(Protocol):
    """A learner with a gradient-free fast path: ``update_memory`` stores what ``batch`` teaches in
    a fast memory and returns the logits ``(B, n_classes)`` the batch got before it was stored."""

    def update_memory(self, batch: Batch) -> Tensor:
        ...


@runtime_checkable
class Consolidator(Protocol):
    """A learner that can take one consolidation (sleep) step on ``batch``.

    ``generator`` draws any replay sample (the loop passes its shuffle generator, so a sleep block
    does not consume the learner's own random stream). The returned :class:`SleepStats` counts the
    batch actually trained on, before the update, and says where it came from.
    """

    def consolidate(self, batch: Batch, generator: torch.Generator | None = None) -> SleepStats:
        ...


class Learner:
    """Shared plumbing for methods trained by SGD on a :class:`~lifelong.learn.nets.Net`.

    Parameters
    ----------
    model
        the network; its ``forward`` gives logits over every class (a single head).
    lr, momentum, weight_decay
        plain SGD, as in the papers' MLP benchmarks.
    seed
        seeds ``self.generator`` and, through :func:`derive_seed`, every other random stream.
    task_classes
        for task-incremental scenarios: the classes of each task. Logits outside a sample's task
        are masked in the loss and at prediction (a multi-head network by declared masking).
    augment
        a name of :data:`lifelong.learn.augment.AUGMENTATIONS` (``"crop_flip"``): image batches are
        augmented before the forward pass, incoming and replay alike, with the learner's own
        ``aug_generator``; memories store the un-augmented inputs. ``None`` (the default): none.
        Composable methods and those that set ``augments = True`` take it (set it in ``[train]``).
    terms
        extra loss terms, one table each (``{"name": "ewc", "ewc_lambda": 10.0}``; see
        :data:`lifelong.learn.terms.TERMS`), added after the method's own. Only composable methods
        (those whose update is :meth:`update`) take them.

    Examples
    --------
    >>> import lifelong.learn.methods  # the methods register their terms (l2, ewc, ...)
    >>> from lifelong.learn.nets import mlp
    >>> learner = Learner(mlp((4,), 3, hidden=(8,), seed=0), terms=[{"name": "l2", "l2_lambda": 1.0}])
    >>> [t.name for t in learner.loss_terms], learner.needs_boundaries
    (['ce', 'l2'], True)
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: "stream" trains on the chunks as they come; "cumulative" and "joint" are oracles that
    #: see the union of chunks so far, or every chunk at once (the loop builds those views).
    data_view: ClassVar[str] = "stream"
    #: True when the method's end_chunk does work. An instance whose added terms need boundaries
    #: (an EWC term on ER) says so in its own ``needs_boundaries``.
    needs_boundaries: ClassVar[bool] = False
    #: True when the update is :meth:`update` over ``loss_terms``, so extra terms can be added.
    composable: ClassVar[bool] = True
    #: True when the method applies ``augment`` in its own ``observe`` (composable ones do it in
    #: :meth:`context`)
    augments: ClassVar[bool] = False
    #: True when the method calls ``model.features(x)`` (the penultimate features)
    needs_features: ClassVar[bool] = False
    #: the replay memory that consolidation samples from, where the method has one
    memory: TensorMemory | None = None

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 0.05,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
        task_classes: list[tuple[int, ...]] | None = None,
        terms: Sequence[Mapping[str, Any]] | None = None,
        augment: str | None = None,
    ) -> None:
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.model = model
        #: where the model's parameters are; the learner's masks, flags and memories live there too
        self.device = model_device(model)
        #: incoming and replay batches share one forward call (see :meth:`context`) unless the
        #: network has batch statistics, where each sample's logits depend on its call
        self.fused_forward = not has_batch_statistics(model)
        self.lr, self.momentum, self.weight_decay, self.seed = lr, momentum, weight_decay, seed
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.generator = torch.Generator().manual_seed(derive_seed(seed, "learner"))
        if augment == "none":
            augment = None
        self.augment = augment
        self.augmenter = build_augment(augment)
        if self.augmenter is not None and not (self.composable or self.augments):
            raise ConfigError(f"{self.name}: this method does not apply data augmentation (its update rule is its own); "
                              f"remove [train] augment, or use er, der, derpp, er_ace, cls_er or another composable "
                              f"method")
        #: the augmentations' random stream (crop offsets, flips), apart from the method's own
        self.aug_generator = torch.Generator().manual_seed(derive_seed(seed, "augment"))
        self.n_classes = int(self._out_features())
        if self.needs_features and not callable(getattr(model, "features", None)):
            raise ConfigError(f"{self.name}: the model ({type(model).__name__}) has no `features(x)` method, which this "
                              f"method needs (it works on the penultimate features); add `def features(self, x)` "
                              f"returning the (B, D) input of the head")
        self.task_classes = task_classes
        self._task_mask: Tensor | None = None
        if task_classes is not None:
            mask = torch.zeros(len(task_classes), self.n_classes, dtype=torch.bool)
            for t, cs in enumerate(task_classes):
                mask[t, list(cs)] = True
            self._task_mask = mask.to(self.device)
        self.seen_classes = torch.zeros(self.n_classes, dtype=torch.bool, device=self.device)
        self.n_observed = 0
        self.terms = terms
        self.extra_terms = build_terms(terms, owner=self.name or type(self).__name__)
        if self.extra_terms and not self.composable:
            raise ConfigError(f"{self.name}: this method has an update rule of its own and takes no extra loss "
                              f"terms; remove `terms` or use a composable method (naive, er, der, ewc, ...)")
        for term in self.extra_terms:
            term.bind(self)
        self.loss_terms: list[Term] = []
        self.compose(IncomingCE())
        self.precision = "fp32"  # set_precision: autocast around the step's forward pass
        self._amp_dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None  # fp16 on CUDA only
        self.compiled = False  # set_compile: torch.compile of the step's forward pass
        self._forward_model: nn.Module = model

    def set_compile(self, enabled: bool = True, *, backend: str = "inductor") -> None:
        """Run the training step's forward pass (:meth:`forward`) through ``torch.compile(model,
        backend=backend)``; ``enabled=False`` (the default state) goes back to eager.

        The compiled module shares the model's parameters and buffers, so optimiser state,
        checkpoints, resume and evaluation (which stays eager) are untouched. Only composable
        methods take it, as for :meth:`set_precision`. A backend that cannot run here is a
        :class:`ConfigError`: checked now where it can be (TorchDynamo's Python support, a C++
        compiler for inductor on the CPU), otherwise at the first step.
        """
        if not enabled:
            self.compiled, self._forward_model = False, self.model
            return
        if not self.composable:
            raise ConfigError(f"{self.name}: [train] compile = true applies to the composable methods (er, der, derpp, "
                              f"ewc, ...), whose step the learner runs; this one has an update rule of its own. Remove it")
        check_compile_backend(backend, self.device)
        self.compiled, self._forward_model = True, torch.compile(self.model, backend=backend)

    def set_precision(self, precision: str) -> None:
        """Train with mixed precision: ``"bf16"`` or ``"fp16"`` autocast around the step's forward
        pass (:meth:`forward`), with a gradient scaler for fp16; ``"fp32"`` (the default) turns it off.

        The logits are cast back to float32, so every loss term, stored logit and statistic is
        float32; evaluation (:meth:`predict`) runs in float32. Only composable methods (whose step
        is :meth:`context` and :meth:`update`) take it. fp16 needs CUDA: its gradient scaler is
        what keeps small gradients from underflowing, and the CPU has no fp16 autocast worth using.
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
        if precision != "fp32" and not self.composable:
            raise ConfigError(f"{self.name}: [train] precision = {precision!r} applies to the composable methods (er, der, "
                              f"derpp, ewc, ...), whose step the learner runs; this one has an update rule of its own. "
                              f"Remove it (fp32 is the default)")
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"[train] precision = 'fp16' needs a CUDA device (fp16 training needs CUDA's gradient "
                              f"scaler), but the model is on {self.device.type!r}; use precision = 'bf16' there, or "
                              f"'fp32'")
        self.precision, self._amp_dtype = precision, PRECISIONS[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def forward(self, x: Tensor) -> Tensor:
        """The training step's forward pass: ``(B, n_classes)`` float32 logits, computed under
        autocast when :meth:`set_precision` asked for bf16 or fp16."""
        model = self._forward_model if self.compiled else self.model
        try:
            if self._amp_dtype is None:
                return model(x)
            with torch.autocast(self.device.type, dtype=self._amp_dtype):
                out = model(x)
        except Exception as exc:  # a compiler failure surfaces at the first call
            if self.compiled and type(exc).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise ConfigError(f"[train] compile = true: torch.compile failed on this model and device "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  f"set compile = false (eager gives the same results)") from exc
            raise
        return out.float()

    def compose(self, *own: Term) -> None:
        """Make ``own`` (the method's terms, the incoming-batch loss first) followed by the run's
        extra terms the learner's objective."""
        for term in own:
            term.bind(self)
        self.loss_terms = [*own, *self.extra_terms] if self.composable else []
        self.needs_boundaries = type(self).needs_boundaries or any(t.needs_boundaries for t in self.loss_terms)

    def term(self, name: str) -> Term:
        """The first of ``loss_terms`` named ``name``."""
        for t in self.loss_terms:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no loss term {name!r}; it has {[t.name for t in self.loss_terms]}")

    def _out_features(self) -> int:
        head = getattr(self.model, "head", None)
        if isinstance(head, nn.Linear):
            return head.out_features
        raise ConfigError(f"the model ({type(self.model).__name__}) has no linear `head`: the learners read the number "
                          f"of classes from it. Give the module a `head = nn.Linear(n_features, n_classes)` attribute, "
                          f"used as its last layer (lifelong.learn.nets.Net(body, head) does this)")

    # -- helpers the methods call -------------------------------------------------------------
    def check_batch(self, batch: Batch) -> None:
        if batch.y.numel():
            lo, hi = torch.aminmax(batch.y)  # one reduction for both ends
            if int(lo) < 0 or int(hi) >= self.n_classes:
                raise DataError(f"labels must lie in [0, {self.n_classes - 1}], got {int(lo)}..{int(hi)}")

    def train_mode(self) -> None:
        """Put the model in training mode; a no-op (no module walk) when it already is."""
        if not self.model.training:
            self.model.train()

    def allowed_classes(self, task: Tensor | None, n: int) -> Tensor:
        """``(n, n_classes)`` bool: the classes each sample may be predicted as (all of them unless
        the scenario declares tasks)."""
        if task is None or self._task_mask is None:
            return torch.ones(n, self.n_classes, dtype=torch.bool, device=self.device)
        return self._task_mask[task]

    def mask(self, logits: Tensor, task: Tensor | None) -> Tensor:
        """Logits with classes outside each sample's task set to -inf (task-incremental only)."""
        if task is None or self._task_mask is None:
            return logits
        return logits.masked_fill(~self._task_mask[task], float("-inf"))

    def ce(self, logits: Tensor, y: Tensor, task: Tensor | None = None) -> Tensor:
        """Mean cross-entropy, restricted to the sample's task where the scenario declares one."""
        return F.cross_entropy(self.mask(logits, task), y)

    def check_finite(self, loss: Tensor, what: str = "training loss", fix: str = "lower the learning rate or "
                     "the method's regularisation strength") -> None:
        """Raise :class:`TrainingDiverged` when ``loss`` is NaN or infinite."""
        if not math.isfinite(loss.item()):  # one scalar read; the step is never taken on a NaN
            raise TrainingDiverged(
                f"{self.name}: the {what} became {float(loss.detach())} after {self.n_observed} samples; {fix}"
            )

    def step(self, loss: Tensor) -> None:
        """One SGD step on ``loss``."""
        self.check_finite(loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.check_gradients()
        self.opt.step()

    #: When True, every step first checks that the gradients are finite and, when one is not, skips
    #: the step and raises :class:`TrainingDiverged` (one reduction and one host read per step). Off
    #: in training runs, where a non-finite gradient shows as a non-finite loss at the next step; on
    #: in ``lifelong serve``, whose learner must never publish non-finite weights.
    guard_gradients: bool = False

    def check_gradients(self) -> None:
        """With :attr:`guard_gradients`, raise :class:`TrainingDiverged` (the step not taken, the
        gradients cleared) when a parameter's gradient holds a NaN or an infinity."""
        if not self.guard_gradients:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()):
            self.opt.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"{self.name}: a gradient became NaN or infinite after {self.n_observed} samples; the step was "
                "skipped and the weights are unchanged. Lower the learning rate or the regularisation strength"
            )

    def augmented(self, x: Tensor) -> Tensor:
        """``x`` augmented with :attr:`augmenter` (``x`` itself when the learner has none)."""
        return x if self.augmenter is None else self.augmenter(x, self.aug_generator)

    def context(self, batch: Batch) -> StepContext:
        """Check ``batch``, enter training mode, let the replay terms draw their batches
        (:meth:`~lifelong.learn.terms.Term.draw`) and run the step's forward pass.

        With replay batches and a network without batch statistics (``fused_forward``), the
        incoming and replay inputs go through the network in one call and the logits are split:
        the losses are the same means as with one call per batch, for one forward and one backward
        pass per step. With BatchNorm each batch gets its own call, as in the papers, so that its
        statistics are those of that batch alone.
        """
        self.check_batch(batch)
        self.train_mode()
        drawn = [(t, bs) for t in self.loss_terms if t.draws and (bs := t.draw(self, len(batch)))]
        x = self.augmented(batch.x)  # the incoming batch first, then each replay batch in order
        if self.augmenter is not None:
            drawn = [(t, [replace(b, x=self.augmented(b.x)) for b in bs]) for t, bs in drawn]
        if not drawn:
            return StepContext(self, batch, self.forward(x), inputs=x)  # logits (B, C)
        xs = [x] + [b.x for _, bs in drawn for b in bs]
        if self.fused_forward:
            outs = iter(self.forward(torch.cat(xs)).split([len(x) for x in xs]))
        else:
            outs = iter([self.forward(x) for x in xs])  # incoming first, then each replay batch
        logits = next(outs)
        return StepContext(self, batch, logits, replays={id(t): [(b, next(outs)) for b in bs] for t, bs in drawn},
                           inputs=x)

    def update(self, ctx: StepContext) -> Tensor:
        """One SGD step on the sum of ``loss_terms``; returns (and sets ``ctx.loss`` to) the first
        term's value, the loss on the incoming batch."""
        total: Tensor | None = None
        for i, term in enumerate(self.loss_terms):
            if term.separate:
                continue
            value = term(ctx)
            if i == 0:
                ctx.loss = value
            if value is not None:
                total = value if total is None else total + value  # left to right, in term order
        if total is None or ctx.loss is None:
            raise ConfigError(f"{self.name}: the first loss term must give the incoming batch's loss")
        self.check_finite(total)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            total.backward()
        else:  # fp16: backward on the scaled loss, then unscale, so the hooks and penalties see true gradients
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.opt)
        for term in self.loss_terms:
            term.after_backward(ctx)
        for term in self.loss_terms:
            if term.separate:
                value = term(ctx)
                if value is not None:
                    self.check_finite(value, what=f"{term.name} penalty")
                    value.backward()  # adds its gradient to p.grad
        if self.scaler is None:
            self.check_gradients()
            self.opt.step()
        else:
            self.scaler.step(self.opt)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        for term in self.loss_terms:
            term.after_update(ctx)
        return ctx.loss

    def record_seen(self, batch: Batch) -> None:
        """Count ``batch`` as observed: its classes join ``seen_classes``. Every ``observe`` calls it
        once (the methods that read ``seen_classes`` or ``n_observed`` rely on it)."""
        self.seen_classes[batch.y] = True
        self.n_observed += len(batch)

    def stats(self, logits: Tensor, batch: Batch, loss: Tensor) -> StepStats:
        """Counts on the incoming batch; ``loss`` is its mean loss (without replay or penalties). Pure."""
        pred = self.mask(logits.detach(), batch.task).argmax(1)
        return StepStats(len(batch), int((pred == batch.y).sum()), float(loss.detach()) * len(batch))

    # -- the protocol ---------------------------------------------------------------------------
    def observe(self, batch: Batch) -> StepStats:
        """One step of :meth:`update` on the method's terms (plain SGD when it has no others)."""
        ctx = self.context(batch)
        loss = self.update(ctx)
        self.record_seen(batch)
        return self.stats(ctx.logits, batch, loss)

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """Logits ``(B, n_classes)``; -inf outside the sample's task in task-incremental runs."""
        was_training = self.model.training
        if was_training:
            self.model.eval()
        out = self.mask(self.model(x), task)
        if was_training:
            self.model.train()
        return out

    def end_chunk(self) -> None:
        """Boundary work: every loss term's (a penalty's consolidation). Never called task-free."""
        for term in self.loss_terms:
            term.end_chunk(self)

    def consolidate(self, batch: Batch, generator: torch.Generator | None = None) -> SleepStats:
        """One sleep step: plain cross-entropy on the network, without the method's terms.

        With a non-empty replay memory it trains on ``len(batch)`` samples drawn from it with
        ``generator`` (default: the learner's); otherwise it rehearses ``batch`` itself. The memory
        is not written. The counts are on the batch trained on, before the update.
        """
        source = "rehearsal"
        if isinstance(self.memory, TensorMemory) and len(self.memory):
            batch, source = self.memory.sample(len(batch), generator or self.generator), "memory"
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        n_correct = int((self.mask(logits.detach(), batch.task).argmax(1) == batch.y).sum())
        self.step(loss)
        return SleepStats(len(batch), n_correct, float(loss.detach()) * len(batch), source=source)

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state to checkpoint (tensors, numbers, nested dicts of them)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "aug_generator": self.aug_generator.get_state(),
            "seen_classes": self.seen_classes.clone(),
            "n_observed": self.n_observed,
            "terms": {f"{i}:{t.name}": t.state_dict() for i, t in enumerate(self.loss_terms)},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"].cpu())
        if "aug_generator" in state:  # checkpoints written before augmentation existed have none
            self.aug_generator.set_state(state["aug_generator"].cpu())
        self.seen_classes = state["seen_classes"].to(self.device, copy=True)
        self.n_observed = int(state["n_observed"])
        keys = [f"{i}:{t.name}" for i, t in enumerate(self.loss_terms)]
        if sorted(keys) != sorted(state["terms"]):
            raise CheckpointError(f"{self.name}: the checkpoint's loss terms {sorted(state['terms'])} differ from "
                              f"this learner's {keys}; build the learner with the same `terms`")
        for key, term in zip(keys, self.loss_terms):
            term.load_state_dict(state["terms"][key])
        self.load_extra_state(state["extra"])
