"""CLS-ER: complementary learning system experience replay.

Paper: Arani, Sarfraz, Zonooz, "Learning Fast, Learning Slow: A General Continual Learning Method
based on Complementary Learning System", ICLR 2022.

A working model ``θ_W`` learns by SGD on the incoming batch together with a replay batch from a
reservoir buffer. Two semantic memories are weight averages of it:

- a plastic model ``θ_P``, updated after a step with probability ``r_P``;
- a stable model ``θ_S``, updated with probability ``r_S < r_P``;

both by ``θ ← α·θ + (1 − α)·θ_W`` with ``α = min(1 − w/(step + w), α_max)`` (``step`` counts the
working model's updates, ``w`` is ``ema_warmup``; see the deviations). On the replay batch each sample takes the logits of whichever memory
gives its true label the higher softmax probability, and the loss is

``CE(f_W([x; x_m]), [y; y_m]) + λ·MSE(f_W(x_m), Z_m)``.

Inference uses the stable model. Each update decision takes its own draw from the learner's
generator (first ``r_P``, then ``r_S``).

Defaults are the paper's Seq-MNIST settings for a buffer of 500 (its hyper-parameter table; the
paper has no Seq-FMNIST entry, and the same MLP benchmark family is ours): ``λ = 2.0``,
``r_P = 1.0``, ``r_S = 0.9``, ``α_P = α_S = 0.99``, replay batch 32.

Settings: class-, task- and domain-incremental, online/task-free (no boundaries needed).

Cost: each step also runs the stable and the plastic model forward on the replay samples (the
consistency targets) and updates the averages: 1.8× ER's wall time at equal steps on Split Fashion-MNIST
(batch 32, memory 500).

Deviations
----------
- The warm-up of the averaging rate is ``α = min(1 − w/(step + w), α_max)`` with ``w = ema_warmup =
  4``; the paper's ``1 − 1/(step + 1)`` is ``ema_warmup = 1``. With ``w = 1`` the stable model is,
  until ``α_max`` is reached (100 steps at 0.99), the uniform average of every working model since
  initialisation, random start included; on a short stream that is all there is, and the inference
  model stays near chance (digits online, 135 steps: learning accuracy 0.19, final 0.20, below ER's
  0.57). With ``w = 4`` it averages about the last quarter of the steps so far, which is the same
  ``α_max`` horizon once ``step > 4/(1 − α_max)`` (400 steps at 0.99): long streams are unchanged in
  effect, short ones get a model that has moved (digits online: final 0.30 with ``w = 4``, 0.48 with
  ``w = 16``). On such a short task-free stream (27 steps a chunk) the stable model still lags each
  new task, so its learning accuracy stays near chance (0.19) whatever ``w``: CLS-ER is a slow
  learner by design, and the run's warnings say so. Offline splits are not affected (digits
  class-IL, 45 epochs: 0.94, above ER's 0.93).
- The working model's forward pass on the replay batch is shared between the cross-entropy and
  the consistency term (the authors' code runs it twice; without dropout the two give the same
  logits, and with BatchNorm one pass updates the running statistics once instead of twice).
- With BatchNorm the incoming and replay batches go through the working model in one call (the
  authors' code concatenates them too), and the running statistics of the plastic and stable
  models are averaged with the same rate as their weights (the authors' code averages the
  parameters only, which leaves the eval-mode semantic memories on their initial statistics).
- ``MSE`` is the mean over samples and logits, as in the authors' code; in task-incremental runs
  it runs over the full head while the cross-entropy is task-masked.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.memory import ReservoirMemory


def _frozen_copy(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.requires_grad_(False)
    return out


class CLSER(Learner):
    name = "cls_er"
    description = "CLS-ER: replay with consistency to plastic and stable weight averages"
    paper = "Arani, Sarfraz & Zonooz 2022, Learning Fast, Learning Slow (ICLR)"
    composable = False  # one forward pass over the joined incoming and replay batches
    augments = True  # both batches are augmented in observe; the memory keeps the raw inputs

    def __init__(
        self,
        model: nn.Module,
        *,
        mem_size: int = 500,
        replay_batch: int = 32,
        reg_weight: float = 2.0,
        plastic_update_freq: float = 1.0,
        plastic_alpha: float = 0.99,
        stable_update_freq: float = 0.9,
        stable_alpha: float = 0.99,
        ema_warmup: float = 4.0,
        **base,
    ) -> None:
        super().__init__(model, **base)
        for key, value in (("plastic_update_freq", plastic_update_freq), ("stable_update_freq", stable_update_freq),
                           ("plastic_alpha", plastic_alpha), ("stable_alpha", stable_alpha)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"cls_er: {key} must lie in [0, 1], got {value}")
        self.mem_size, self.replay_batch, self.reg_weight = mem_size, replay_batch, reg_weight
        self.plastic_update_freq, self.plastic_alpha = plastic_update_freq, plastic_alpha
        self.stable_update_freq, self.stable_alpha = stable_update_freq, stable_alpha
        if ema_warmup < 1.0:
            raise ConfigError(f"cls_er: ema_warmup must be >= 1 (1 is the paper's schedule), got {ema_warmup}")
        self.ema_warmup = ema_warmup
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        self.plastic = _frozen_copy(model).eval()  # θ_P
        self.stable = _frozen_copy(model).eval()  # θ_S
        self.global_step = 0

    def semantic_logits(self, mb: Batch) -> Tensor:
        """Per replay sample, the logits of the memory (stable or plastic) that is surer of the true label."""
        with torch.no_grad():
            z_s, z_p = self.stable(mb.x), self.plastic(mb.x)  # (M, C) each
            p_s = F.softmax(self.mask(z_s, mb.task), 1).gather(1, mb.y[:, None])  # (M, 1)
            p_p = F.softmax(self.mask(z_p, mb.task), 1).gather(1, mb.y[:, None])
            return torch.where(p_s > p_p, z_s, z_p)

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        b = len(batch)
        if len(self.memory):
            mb = self.memory.sample(self.replay_batch, self.generator)
            xa = self.augmented(batch.x)  # incoming first, then replay (as Learner.context)
            mb = Batch(self.augmented(mb.x), mb.y, mb.task, mb.extras)  # the semantic memories see it too
            x = torch.cat([xa, mb.x])
            y = torch.cat([batch.y, mb.y])
            task = torch.cat([batch.task, mb.task]) if batch.task is not None and mb.task is not None else None
            out = self.model(x)  # (B + M, C)
            consistency = F.mse_loss(out[b:], self.semantic_logits(mb))
            total = self.ce(out, y, task) + self.reg_weight * consistency
        else:
            out = self.model(self.augmented(batch.x))
            total = self.ce(out, batch.y, batch.task)
        logits = out[:b]
        loss = self.ce(logits, batch.y, batch.task)  # the incoming batch alone, for the record
        self.step(total)
        self.memory.add(batch)
        self.global_step += 1
        # one draw per memory, in a fixed order, from the learner's generator
        if float(torch.rand((), generator=self.generator)) < self.plastic_update_freq:
            self.ema_update(self.plastic, self.plastic_alpha)
        if float(torch.rand((), generator=self.generator)) < self.stable_update_freq:
            self.ema_update(self.stable, self.stable_alpha)
        self.record_seen(batch)
        return self.stats(logits, batch, loss)

    @torch.no_grad()
    def ema_update(self, ema: nn.Module, alpha_max: float) -> None:
        """``θ ← α·θ + (1 − α)·θ_W`` with ``α = min(1 − w/(step + w), α_max)`` (``w = ema_warmup``;
        ``w = 1`` is the paper's ``1 − 1/(step + 1)``)."""
        w = self.ema_warmup
        alpha = min(1.0 - w / (self.global_step + w), alpha_max)
        for e, w in zip(ema.parameters(), self.model.parameters(), strict=True):
            e.mul_(alpha).add_(w.detach(), alpha=1.0 - alpha)
        # BatchNorm running statistics are averaged like the weights (the semantic memories run in
        # eval mode, on these statistics); integer buffers (batches tracked) are copied
        for e, w in zip(ema.buffers(), self.model.buffers(), strict=True):
            if e.is_floating_point():
                e.mul_(alpha).add_(w, alpha=1.0 - alpha)
            else:
                e.copy_(w)

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """Logits of the stable model ``θ_S``."""
        return self.mask(self.stable(x), task)

    def extra_state(self) -> dict:
        return {
            "memory": self.memory.state_dict(),
            "plastic": self.plastic.state_dict(),
            "stable": self.stable.state_dict(),
            "global_step": self.global_step,
        }

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.plastic.load_state_dict(state["plastic"])
        self.stable.load_state_dict(state["stable"])
        self.global_step = int(state["global_step"])
