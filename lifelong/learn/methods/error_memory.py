"""Error memory: a fast, non-parametric residual memory beside any slow learner.

Paper: Zhu, Cai, et al., "ReLoop2: Building Self-Adaptive Recommendation Models via Responsive
Error Compensation Loop", KDD 2023.

The slow model (any registered learner, ``inner``) keeps training by gradient descent. Beside it a
bounded memory stores, for samples the model got wrong or right with low confidence,

- key   ``k = h(x)/‖h(x)‖``: the inner network's hidden features, L2-normalised;
- value ``e = onehot(y) − softmax(f(x))``: the residual of the prediction.

At prediction time the nearest stored residuals correct the output:

``p' = p + λ·Σ_k w_k d_k e_k``, over the ``top_k`` keys with cosine similarity above
``sim_threshold``, ``w = softmax(sim / temperature)`` over those keys, and ``d_k = 2^(−age_k /
half_life)`` the fading of a residual as the slow model absorbs it (``age`` counts feedback batches
since it was stored; ``half_life = 0`` turns fading off).

``predict`` returns ``log(clip(p', eps, 1))`` as logits, so an exact key whose residual was
stored against the current model gives back its own label. Insertion overwrites the oldest slot
(a ring buffer): O(1) amortised per sample, bounded size. :meth:`ErrorMemory.update_memory` is the
fast path: a serving worker calls it on feedback before any gradient step; ``observe`` calls it
and then lets the inner learner take its step.

Defaults (``λ = 0.5``, ``sim_threshold = 0.9``, ``half_life = 50``) are ours, chosen on the
Fashion-MNIST ``concept_drift`` stream: ``λ = 1`` recovers a little faster after a shift but its
corrections from ambiguous neighbours cost accuracy once the slow model has learned the concept.

Building it from a run config::

    [learner]
    name = "error_memory"
    inner = "er"                  # any registered learner
    inner_hp = {mem_size = 500}   # the inner learner's own hyper-parameters

Settings: whatever the inner learner supports (class-, task-, domain-incremental, online).

Deviations
----------
- ReLoop2 corrects a recommendation score (a regression/CTR output); here the residual lives in
  the class-probability simplex, so it is a vector over classes.
- The paper refreshes the memory continuously and resets it when the model is retrained. Here the
  slow model is updated every step, so instead of a reset each residual fades with its age
  (``half_life``) and the FIFO ring evicts the oldest. Without fading, residuals of a past concept
  outlive the model's errors on it (few new errors are stored once the model is right) and pull
  later predictions towards stale labels.
- ``observe`` reports the corrected (memory-assisted) prediction on the incoming batch, queried
  before that batch is inserted: the accuracy a served model would have had.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import LEARNERS, DriftAware, Learner, StepStats
from lifelong.options import check_options, parameters


class ResidualStore:
    """A bounded ring of (key, value) rows with cosine k-nearest-neighbour lookup.

    Examples
    --------
    >>> store = ResidualStore(capacity=2)
    >>> store.add(torch.eye(3)[:1], torch.tensor([[0.5, -0.5]]), step=0)
    >>> store.query(torch.eye(3)[:1], top_k=1, temperature=0.1, threshold=0.5, now=0, half_life=10.0)
    tensor([[ 0.5000, -0.5000]])
    >>> store.query(torch.eye(3)[:1], top_k=1, temperature=0.1, threshold=0.5, now=10, half_life=10.0)
    tensor([[ 0.2500, -0.2500]])
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"error_memory: capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.keys: Tensor | None = None  # (capacity, D), rows L2-normalised
        self.values: Tensor | None = None  # (capacity, C)
        self.steps = torch.zeros(self.capacity, dtype=torch.int64)  # when each row was stored (moved with the keys)
        self.size = 0  # slots 0..size-1 are filled
        self.next = 0  # the slot the next row overwrites (the oldest once full)

    def __len__(self) -> int:
        return self.size

    def add(self, keys: Tensor, values: Tensor, *, step: int) -> None:
        """Insert rows in order; when full each overwrites the oldest. Vectorised: O(rows)."""
        n = keys.shape[0]
        if n == 0:
            return
        if self.keys is None:
            self.keys = torch.zeros(self.capacity, keys.shape[1], device=keys.device)
            self.values = torch.zeros(self.capacity, values.shape[1], device=keys.device)
            self.steps = self.steps.to(keys.device)
        assert self.values is not None
        if n > self.capacity:  # only the newest `capacity` rows would survive anyway
            skip = n - self.capacity
            keys, values, self.next = keys[skip:], values[skip:], (self.next + skip) % self.capacity
            n = self.capacity
        slots = (self.next + torch.arange(n, device=self.keys.device)) % self.capacity
        self.keys[slots] = keys.detach()
        self.values[slots] = values.detach()
        self.steps[slots] = int(step)
        self.next = (self.next + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def query(self, keys: Tensor, *, top_k: int, temperature: float, threshold: float, now: int,
              half_life: float) -> Tensor:
        """``Σ_k w_k d_k e_k`` for each query row; zero where no stored key is similar enough. (B, C)"""
        if self.size == 0 or self.keys is None or self.values is None:
            raise RuntimeError("query on an empty store")
        sims = keys @ self.keys[: self.size].T  # (B, size) cosine similarities
        k = min(top_k, self.size)
        top, idx = sims.topk(k, dim=1)  # (B, k)
        valid = top >= threshold
        w = torch.softmax((top / temperature).masked_fill(~valid, float("-inf")), dim=1)
        w = torch.where(valid, w, torch.zeros_like(w))  # rows with no valid key: NaN -> 0
        if half_life > 0:  # d_k = 2^(-age/half_life)
            w = w * torch.exp2(-(now - self.steps[idx]).to(w.dtype) / half_life)
        return torch.einsum("bk,bkc->bc", w, self.values[idx])

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "keys": self.keys, "values": self.values, "steps": self.steps.clone(),
                "size": self.size, "next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity, self.size, self.next = int(state["capacity"]), int(state["size"]), int(state["next"])
        self.keys, self.values, self.steps = state["keys"], state["values"], state["steps"].clone()


def build_inner(name: str, model: nn.Module, hparams: dict[str, Any]) -> Learner:
    """The inner learner: ``LEARNERS[name](model, **hparams)``, its hyper-parameters checked against
    the annotations of every ``__init__`` in its MRO (as :func:`lifelong.learn.methods.make_learner`
    does; that module imports this one, so this one reads the registry directly)."""
    cls = LEARNERS[name]
    known: dict[str, tuple[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass) and issubclass(klass, Learner):
            known.update(parameters(klass.__init__, keyword_only=True))
    return cls(model, **check_options(known, hparams, where=f"error_memory: inner learner {name!r}"))


class ErrorMemory(Learner):
    name = "error_memory"
    needs_features = True  # model.features(x)
    description = "error memory (ReLoop2): nearest stored residuals correct any inner learner's output"
    paper = "Zhu et al. 2023, ReLoop2: Responsive Error Compensation Loop (KDD)"
    composable = False  # the update is the inner learner's: give it terms through inner_hp

    def __init__(
        self,
        model: nn.Module,
        *,
        inner: str = "er",
        inner_hp: dict[str, Any] | None = None,
        capacity: int = 1000,
        top_k: int = 8,
        lam: float = 0.5,
        temperature: float = 0.1,
        sim_threshold: float = 0.9,
        conf_threshold: float = 0.5,
        half_life: float = 50.0,
        eps: float = 1e-6,
        **base,
    ) -> None:
        super().__init__(model, **base)
        if inner not in LEARNERS or LEARNERS[inner].data_view != "stream":
            raise ConfigError(
                f"error_memory: inner must be a registered stream learner, got {inner!r}; "
                f"choose one of: {', '.join(sorted(k for k, v in LEARNERS.items() if v.data_view == 'stream'))}"
            )
        if not isinstance(inner_hp, (dict, type(None))):
            raise ConfigError(f"error_memory: inner_hp must be a table of the inner learner's hyper-parameters, got {inner_hp!r}")
        if top_k < 1 or temperature <= 0 or half_life < 0 or not 0 < eps < 1:
            raise ConfigError("error_memory: top_k must be >= 1, temperature > 0, half_life >= 0 and eps in (0, 1)")
        self.inner_name, self.inner_hp = inner, dict(inner_hp or {})
        self.capacity, self.top_k, self.lam, self.temperature = capacity, top_k, lam, temperature
        self.sim_threshold, self.conf_threshold, self.half_life, self.eps = sim_threshold, conf_threshold, half_life, eps
        shared = {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                  "seed": self.seed, "task_classes": self.task_classes}
        self.inner = build_inner(inner, model, {**shared, **self.inner_hp})
        self.needs_boundaries = self.inner.needs_boundaries  # end_chunk is the inner learner's
        self.store = ResidualStore(capacity)
        self.clock = 0  # update_memory calls so far: the age unit of stored residuals

    # -- the fast path ----------------------------------------------------------------------------
    @torch.no_grad()
    def _keys(self, x: Tensor) -> Tensor:
        was_training = self.model.training
        self.model.eval()
        h = self.model.features(x).flatten(1)  # (B, D) hidden features of the inner network
        self.model.train(was_training)
        return F.normalize(h, dim=1)

    @torch.no_grad()
    def correction(self, keys: Tensor) -> Tensor:
        """``λ·Σ_k w_k e_k`` for normalised query keys (B, D); zero rows where nothing is near. (B, C)"""
        if len(self.store) == 0:
            return torch.zeros(keys.shape[0], self.n_classes, device=keys.device)
        return self.lam * self.store.query(keys, top_k=self.top_k, temperature=self.temperature,
                                           threshold=self.sim_threshold, now=self.clock, half_life=self.half_life)

    def _logits(self, p: Tensor, task: Tensor | None) -> Tensor:
        return self.mask(torch.log(p.clamp(self.eps, 1.0)), task)

    @torch.no_grad()
    def update_memory(self, batch: Batch) -> Tensor:
        """Store the residuals of the batch's wrong or unsure predictions; no gradient step.

        Returns the corrected logits the batch got *before* its own residuals were inserted.
        """
        self.check_batch(batch)
        self.clock += 1
        p = torch.softmax(self.inner.predict(batch.x, batch.task), dim=1)  # (B, C); 0 outside the task
        keys = self._keys(batch.x)
        corrected = self._logits(p + self.correction(keys), batch.task)
        confidence = p.gather(1, batch.y[:, None]).squeeze(1)
        poor = (p.argmax(1) != batch.y) | (confidence < self.conf_threshold)
        residual = F.one_hot(batch.y, self.n_classes).to(p.dtype) - p  # onehot(y) − softmax(f(x))
        self.store.add(keys[poor], residual[poor], step=self.clock)
        return corrected

    # -- the protocol -------------------------------------------------------------------------------
    def observe(self, batch: Batch) -> StepStats:
        logits = self.update_memory(batch)
        self.inner.observe(batch)
        self.record_seen(batch)
        pred = logits.argmax(1)
        loss_sum = float(F.cross_entropy(logits, batch.y, reduction="sum"))
        return StepStats(len(batch), int((pred == batch.y).sum()), loss_sum)

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """``log(clip(p + λ·Σ w e))``: the inner prediction corrected by the nearest residuals."""
        p = torch.softmax(self.inner.predict(x, task), dim=1)
        return self._logits(p + self.correction(self._keys(x)), task)

    def end_chunk(self) -> None:
        self.inner.end_chunk()

    def on_drift(self) -> None:
        """Pass an external drift alarm to the inner learner's drift response, if it has one."""
        if isinstance(self.inner, DriftAware):
            self.inner.on_drift()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "store": self.store.state_dict(), "clock": self.clock,
                "seen_classes": self.seen_classes.clone(), "n_observed": self.n_observed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.store.load_state_dict(state["store"])
        self.clock = int(state["clock"])
        self.seen_classes = state["seen_classes"].clone()
        self.n_observed = int(state["n_observed"])
