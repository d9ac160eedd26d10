"""Homeostatic plasticity: the learner's own error rate sets its learning rate.

Inspired by "Need is All You Need: Homeostatic Neural Networks Adapt to Concept Shift" (Man, Damasio
& Neven, 2022). That paper lets the network's success or failure regulate its own learning; it
gives no formula for a learning rate, so **the rule below is our own design**.

Design
------
Each step measures the error rate ``e_t`` of the current network on the incoming batch (before
the update) and keeps two exponential moving averages of it:

- fast ``f ← (1 − β_f)·f + β_f·e_t``  (recent errors, ``β_f = fast_rate``),
- slow ``s ← (1 − β_s)·s + β_s·e_t``  (the long-run set point, ``β_s = slow_rate``),

both started at the first batch's error. The learning rate of the step is

``lr_t = lr · clip(((f + ε)/(s + ε))^γ, m_min, m_max)``.

A shift (new labels, a new concept) makes recent errors exceed the long-run rate, so the ratio and
the learning rate rise, up to ``m_max``. While predictions are right the fast average falls back
to (or below) the slow one, and the multiplier relaxes to ``m_min`` (1 by default: never slower
than plain SGD). Slowly the set point ``s`` itself follows a lasting change of the error level,
which is the homeostatic part: a permanently harder stream does not keep the rate high. ``ε``
keeps the ratio sane when the long-run error is near zero.

The update itself is plain SGD on the incoming batch; with ``mem_size > 0`` a reservoir buffer
adds an ER replay term (composition, as in :mod:`lifelong.learn.methods.er`).

Settings: class-, task- and domain-incremental, online/task-free (no boundaries needed); it is
designed for concept-drift streams.

Deviations
----------
- ``on_drift()`` (an alarm from outside, e.g. the serving worker's detector) raises the fast error
  average at once; this hook is ours.
- The paper's homeostatic networks modulate their own parameters through a learned regulator;
  we modulate only the global SGD step size, by the fixed rule above.
"""

from __future__ import annotations

from torch import nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.terms import IncomingCE, ReplayCE
from lifelong.seeding import derive_seed


class Homeostatic(Learner):
    name = "homeostatic"
    description = "homeostatic plasticity: lr multiplier from fast/slow error-rate EMAs (our design)"
    paper = "after Man, Damasio & Neven 2022, Need is All You Need (rule: ours)"

    def __init__(
        self,
        model: nn.Module,
        *,
        fast_rate: float = 0.3,
        slow_rate: float = 0.01,
        gamma: float = 1.0,
        ratio_eps: float = 0.05,
        min_multiplier: float = 1.0,
        max_multiplier: float = 5.0,
        mem_size: int = 0,
        replay_batch: int | None = None,
        **base,
    ) -> None:
        super().__init__(model, **base)
        if not (0 < slow_rate < fast_rate <= 1):
            raise ConfigError(f"homeostatic: need 0 < slow_rate < fast_rate <= 1, got {slow_rate} and {fast_rate}")
        if not (0 < min_multiplier <= max_multiplier):
            raise ConfigError(f"homeostatic: need 0 < min_multiplier <= max_multiplier, got {min_multiplier}, {max_multiplier}")
        self.fast_rate, self.slow_rate, self.gamma, self.ratio_eps = fast_rate, slow_rate, gamma, ratio_eps
        self.min_multiplier, self.max_multiplier = min_multiplier, max_multiplier
        self.mem_size, self.replay_batch = mem_size, replay_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        self.compose(IncomingCE(), ReplayCE(replay_batch=replay_batch))  # replay: nothing while mem_size = 0
        self.fast_error = self.slow_error = 0.0
        self.started = False
        self.multiplier = 1.0

    def regulate(self, error_rate: float) -> float:
        """Update both error averages with ``error_rate`` and return the new lr multiplier."""
        if not self.started:
            self.fast_error = self.slow_error = error_rate
            self.started = True
        else:
            self.fast_error += self.fast_rate * (error_rate - self.fast_error)
            self.slow_error += self.slow_rate * (error_rate - self.slow_error)
        ratio = (self.fast_error + self.ratio_eps) / (self.slow_error + self.ratio_eps)
        self.multiplier = min(max(ratio**self.gamma, self.min_multiplier), self.max_multiplier)
        return self.multiplier

    def on_drift(self) -> None:
        """An external drift alarm is evidence of a shift before the error averages show it: the
        fast average jumps halfway to an error rate of 1, so the multiplier rises on the next step
        and then relaxes by the normal rule."""
        if self.started:
            self.fast_error += 0.5 * (1.0 - self.fast_error)

    def observe(self, batch: Batch) -> StepStats:
        ctx = self.context(batch)
        error_rate = float((self.mask(ctx.logits.detach(), batch.task).argmax(1) != batch.y).float().mean())
        m = self.regulate(error_rate)
        for group in self.opt.param_groups:
            group["lr"] = self.lr * m
        loss = self.update(ctx)
        self.memory.add(batch)
        self.record_seen(batch)
        return self.stats(ctx.logits, batch, loss)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "fast_error": self.fast_error, "slow_error": self.slow_error,
                "started": self.started, "multiplier": self.multiplier}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.fast_error, self.slow_error = float(state["fast_error"]), float(state["slow_error"])
        self.started, self.multiplier = bool(state["started"]), float(state["multiplier"])
