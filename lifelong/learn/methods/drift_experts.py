"""Loss-driven drift detection with a plasticity response or a pool of experts (TAME-style).

Papers: the shift test follows TAME, "Task Agnostic continual learning using Multiple Experts"
(CVPR Workshops 2024): a statistically significant deviation of the training
loss signals a task switch; the learner then switches to the expert that fits or spawns a new one,
and a selector trained on a small buffer routes samples at test time. The detectors are river's
(Bifet & Gavaldà 2007, ADWIN; Page 1954, Page-Hinkley), not copies.

Each step
---------
1. The active expert's mean loss on the incoming batch (before the update) is fed to the river
   detector: ``detector.update(loss)``, then ``detector.drift_detected`` is read. Only a rise
   counts: a detection while the loss is below its running level (learning progress) is ignored.
2. On drift, ``response`` decides:

   - ``"plasticity"``: reset the optimiser state (momentum) and multiply the learning rate by
     ``boost`` for the next ``boost_steps`` steps;
   - ``"experts"``: score every expert's loss on the current batch. If the best one is within
     ``fit_tolerance`` of the running loss level before the drift, switch to it (an old task came
     back); otherwise spawn a new expert, a copy of the current one with a fresh optimiser
     (while fewer than ``max_experts``; at the cap, switch to the best).

   Then the detector starts afresh, so that the switch itself is not reported as a drift.
3. The active expert takes its SGD step; the sample joins the selector's reservoir buffer labelled
   with the active expert's id, and the selector (a linear layer on the flattened inputs) takes one
   SGD step on a batch from that buffer.

``predict`` routes each sample to the expert the selector picks (every sample to the only expert
while there is one).

Checkpoints: river detectors are Python objects and checkpoints must load with
``weights_only=True``, so the learner keeps the losses fed to the current detector since its
last reset and rebuilds the detector by replaying them; river's detectors are deterministic.

Settings: class-, task- and domain-incremental, online/task-free (it needs no boundaries and does
nothing at them).

Deviations
----------
- TAME detects shifts with its own running-statistics test; we use river's Page-Hinkley (default:
  it reacts within a batch or two to an abrupt rise of the loss; ``ph_delta`` is the tolerated rise
  and ``ph_threshold`` the cumulative excess that signals a drift) or ADWIN, which needs the rise
  to last longer before its window test is significant.
- TAME's selector is trained on features of a shared network; ours is linear on the raw inputs,
  which do not move when the experts do. It cannot separate concepts that share inputs and differ
  only in labels (pure relabelling); there the active expert still serves the training stream.
- The loss level an old expert must match (``fit_tolerance``) is our choice of "fits".
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.memory import ReservoirMemory

DETECTORS = ("adwin", "page_hinkley")
RESPONSES = ("plasticity", "experts")


class DriftExperts(Learner):
    name = "drift_experts"
    description = "river drift detector on the loss; on drift boost plasticity or switch/spawn experts"
    paper = "TAME (CVPR-W 2024) shift-triggered experts; river ADWIN / Page-Hinkley detectors"
    composable = False  # the active expert, and so the loss, can change within a step

    def __init__(
        self,
        model: nn.Module,
        *,
        detector: str = "page_hinkley",
        ph_threshold: float = 5.0,
        ph_delta: float = 0.05,
        adwin_delta: float = 0.002,
        adwin_clock: int = 1,
        response: str = "experts",
        boost: float = 5.0,
        boost_steps: int = 50,
        max_experts: int = 5,
        fit_tolerance: float = 1.5,
        level_rate: float = 0.05,
        selector_mem: int = 500,
        selector_batch: int = 32,
        selector_lr: float = 0.1,
        **base,
    ) -> None:
        super().__init__(model, **base)
        if detector not in DETECTORS:
            raise ConfigError(f"drift_experts: detector must be one of {DETECTORS}, got {detector!r}")
        if response not in RESPONSES:
            raise ConfigError(f"drift_experts: response must be one of {RESPONSES}, got {response!r}")
        if max_experts < 1 or boost <= 0 or boost_steps < 0:
            raise ConfigError("drift_experts: max_experts must be >= 1, boost > 0 and boost_steps >= 0")
        self.detector_name, self.ph_threshold, self.ph_delta = detector, ph_threshold, ph_delta
        self.adwin_delta, self.adwin_clock = adwin_delta, adwin_clock
        self.response, self.boost, self.boost_steps = response, boost, boost_steps
        self.max_experts, self.fit_tolerance, self.level_rate = max_experts, fit_tolerance, level_rate
        self.selector_mem, self.selector_batch, self.selector_lr = selector_mem, selector_batch, selector_lr
        self.experts: list[nn.Module] = [model]
        self.opts: list[torch.optim.Optimizer] = [self.opt]
        self.active = 0
        self.detector = self._new_detector()
        self.fed: list[float] = []  # losses fed to the current detector since it was (re)built
        self.level: float | None = None  # running mean of the active expert's loss (the "fit" reference)
        self.boost_left = 0
        self.drift_steps: list[int] = []  # observe() calls (0-based) at which a drift was detected
        self.pending_alarm = False  # an external alarm (on_drift) waiting for the next batch
        self.n_steps = 0
        self.selector: nn.Linear | None = None  # built on the first batch, when the input size is known
        self.selector_buffer = ReservoirMemory(selector_mem, seed=derive_seed(self.seed, "selector-buffer"), device=self.device)

    # -- construction helpers -------------------------------------------------------------------
    def _new_selector(self, in_dim: int) -> nn.Linear:
        sel = nn.utils.skip_init(nn.Linear, in_dim, self.max_experts)  # drawn from g below, not the global RNG
        g = torch.Generator().manual_seed(derive_seed(self.seed, "selector"))
        with torch.no_grad():
            bound = 1 / math.sqrt(in_dim)
            sel.weight.uniform_(-bound, bound, generator=g)
            sel.bias.zero_()
        return sel.to(self.device)

    def _new_detector(self) -> Any:
        from river import drift as river_drift  # imported here: river (with sklearn) takes ~1 s to import

        if self.detector_name == "adwin":
            return river_drift.ADWIN(delta=self.adwin_delta, clock=self.adwin_clock)
        return river_drift.PageHinkley(threshold=self.ph_threshold, delta=self.ph_delta, mode="up")

    def _new_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(module.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _activate(self, i: int) -> None:
        self.active = i
        self.model, self.opt = self.experts[i], self.opts[i]

    # -- the update -----------------------------------------------------------------------------
    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        value = float(loss.detach())
        self.record_seen(batch)
        stats = self.stats(logits, batch, loss)  # counts of the expert that was active on arrival
        if self.detect(value) or self.pending_alarm:
            self.pending_alarm = False
            self.drift_steps.append(self.n_steps)
            self.respond(batch)
            logits = self.model(batch.x)  # the new active expert trains on this batch
            loss = self.ce(logits, batch.y, batch.task)
        self._update_level(float(loss.detach()))
        lr = self.lr * (self.boost if self.boost_left > 0 else 1.0)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.boost_left = max(0, self.boost_left - 1)
        self.step(loss)
        self.train_selector(batch)
        self.n_steps += 1
        return stats

    def detect(self, value: float) -> bool:
        """Feed one loss to the river detector; true when it reports a drift upwards."""
        if not math.isfinite(value):
            return False  # self.step raises the divergence error
        self.detector.update(value)
        self.fed.append(value)
        return bool(self.detector.drift_detected) and (self.level is None or value > self.level)

    def on_drift(self) -> None:
        """An external drift alarm (e.g. from the serving worker's detector): the next batch gets
        the same response as a drift this learner detected itself (it needs a batch to pick or
        spawn an expert)."""
        self.pending_alarm = True

    def respond(self, batch: Batch) -> None:
        if self.response == "plasticity":
            self.opt.state.clear()  # forget momentum: no inertia from the old concept
            self.boost_left = self.boost_steps
        else:
            losses = self.expert_losses(batch)
            best = int(torch.tensor(losses).argmin())
            fits = self.level is not None and losses[best] <= self.fit_tolerance * self.level
            if fits or len(self.experts) >= self.max_experts:
                self._activate(best)
            else:
                self.experts.append(copy.deepcopy(self.model))
                self.opts.append(self._new_optimizer(self.experts[-1]))
                self._activate(len(self.experts) - 1)
            self.level = None  # the loss level is re-learned for the active expert
        self.detector, self.fed = self._new_detector(), []

    @torch.no_grad()
    def expert_losses(self, batch: Batch) -> list[float]:
        return [float(self.ce(e(batch.x), batch.y, batch.task)) for e in self.experts]

    def _update_level(self, value: float) -> None:
        if math.isfinite(value):
            self.level = value if self.level is None else self.level + self.level_rate * (value - self.level)

    def train_selector(self, batch: Batch) -> None:
        """Store (x, active expert) and take one SGD step of the linear selector on its buffer."""
        if self.selector is None:
            self.selector = self._new_selector(batch.x[0].numel())
        self.selector_buffer.add(Batch(batch.x, torch.full((len(batch),), self.active, dtype=torch.int64,
                                                           device=batch.x.device)))
        if len(self.experts) < 2:
            return
        mb = self.selector_buffer.sample(self.selector_batch, self.generator)
        logits = self.selector(mb.x.flatten(1))[:, : len(self.experts)]
        loss = F.cross_entropy(logits, mb.y)
        self.selector.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in self.selector.parameters():
                p -= self.selector_lr * p.grad

    # -- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """Each sample's logits from the expert the selector routes it to."""
        if len(self.experts) == 1 or self.selector is None:
            route = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        else:
            route = self.selector(x.flatten(1))[:, : len(self.experts)].argmax(1)  # (B,)
        out = torch.zeros(x.shape[0], self.n_classes, device=x.device)
        for i in route.unique().tolist():
            expert = self.experts[i]
            was_training = expert.training
            expert.eval()
            rows = route == i
            out[rows] = expert(x[rows])
            expert.train(was_training)
        return self.mask(out, task)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "experts": {str(i): e.state_dict() for i, e in enumerate(self.experts)},
            "opts": {str(i): o.state_dict() for i, o in enumerate(self.opts)},
            "active": self.active,
            "generator": self.generator.get_state(),
            "seen_classes": self.seen_classes.clone(),
            "n_observed": self.n_observed,
            "n_steps": self.n_steps,
            # the detector is rebuilt by replaying these losses (float64 keeps them exact)
            "detector_losses": torch.tensor(self.fed, dtype=torch.float64),
            "level": float("nan") if self.level is None else self.level,
            "boost_left": self.boost_left,
            "drift_steps": torch.tensor(self.drift_steps, dtype=torch.int64),
            "pending_alarm": self.pending_alarm,
            "selector": self.selector.state_dict() if self.selector is not None else None,
            "selector_buffer": self.selector_buffer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = len(state["experts"])
        template = self.experts[0]
        self.experts = [copy.deepcopy(template) for _ in range(n)]
        self.opts = [self._new_optimizer(e) for e in self.experts]
        for i in range(n):
            self.experts[i].load_state_dict(state["experts"][str(i)])
            self.opts[i].load_state_dict(state["opts"][str(i)])
        self._activate(int(state["active"]))
        self.generator.set_state(state["generator"])
        self.seen_classes = state["seen_classes"].clone()
        self.n_observed, self.n_steps = int(state["n_observed"]), int(state["n_steps"])
        self.detector, self.fed = self._new_detector(), []
        for value in state["detector_losses"].tolist():
            self.detector.update(value)
            self.fed.append(value)
        level = float(state["level"])
        self.level = None if math.isnan(level) else level
        self.boost_left = int(state["boost_left"])
        self.drift_steps = [int(s) for s in state["drift_steps"].tolist()]
        self.pending_alarm = bool(state["pending_alarm"])
        self.selector = None
        if state["selector"] is not None:
            self.selector = self._new_selector(state["selector"]["weight"].shape[1])
            self.selector.load_state_dict(state["selector"])
        self.selector_buffer.load_state_dict(state["selector_buffer"])
