"""Dark experience replay: DER and DER++.

Paper: Buzzega, Boschini, Porrello, Abati, Calderara, "Dark Experience for General Continual
Learning: a Strong, Simple Baseline", NeurIPS 2020.

The reservoir buffer stores each sample with the logits the network gave it when it was inserted
(the forward pass of the step that saw it, before the update). Each step:

- DER:   ``CE(f(x), y) + α·MSE(f(x_m), z_m)`` on a replay batch ``(x_m, z_m)``;
- DER++: adds ``β·CE(f(x'_m), y'_m)`` on a second replay batch drawn independently of the first.

Defaults are the paper's best hyper-parameters for Seq-MNIST with a buffer of 500 (its
hyper-parameter table, also the authors' mammoth ``utils/best_args.py``): DER ``α = 1.0`` (lr 0.03,
batch 10, replay batch 128); DER++ ``α = 1.0, β = 0.5`` (lr 0.03, batch and replay batch 10).
Here lr, batch and replay batch come from the run.

Settings: class-, task- and domain-incremental, online/task-free (no boundaries needed).

Deviations
----------
- The MSE is the mean over batch and logits (``F.mse_loss``), as in the authors' code whose
  hyper-parameters we cite; the paper writes a squared norm, which is ``n_classes`` times larger.
- Logits are stored unmasked (the raw head) also in task-incremental runs, and matched over the
  full head.
- The replay batch size defaults to the incoming batch size (DER++'s Seq-MNIST setting uses
  10 for both).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.memory import ReservoirMemory


class DER(Learner):
    name = "der"
    description = "dark experience replay: matches the logits stored in a reservoir buffer"
    paper = "Buzzega et al. 2020, Dark Experience for General Continual Learning (NeurIPS)"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, alpha: float = 1.0,
                 replay_batch: int | None = None, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.alpha, self.replay_batch = mem_size, alpha, replay_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"))

    def logit_replay(self, mb: Batch) -> Tensor:
        """``α·MSE(f(x_m), z_m)``: zero while the network still gives the stored logits."""
        return self.alpha * F.mse_loss(self.model(mb.x), mb.extras["logits"])

    def replay_loss(self, n: int) -> Tensor:
        """The replay terms added to the incoming batch's loss; ``n`` replay samples per batch."""
        return self.logit_replay(self.memory.sample(n, self.generator))

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.model.train()
        logits = self.model(batch.x)  # (B, C) raw head: also the logits stored below
        loss = self.ce(logits, batch.y, batch.task)
        total = loss
        if len(self.memory):
            total = total + self.replay_loss(self.replay_batch or len(batch))
        self.step(total)
        self.memory.add(batch, logits=logits.detach())
        return self.stats(logits, batch, loss)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])


class DERPP(DER):
    name = "derpp"
    description = "DER++: logit replay plus cross-entropy on a second, independent replay batch"
    paper = "Buzzega et al. 2020, Dark Experience for General Continual Learning (NeurIPS)"

    def __init__(self, model: nn.Module, *, alpha: float = 1.0, beta: float = 0.5, **der) -> None:
        super().__init__(model, alpha=alpha, **der)
        self.beta = beta

    def label_replay(self, mb: Batch) -> Tensor:
        """``β·CE(f(x'_m), y'_m)`` on the stored labels."""
        return self.beta * self.ce(self.model(mb.x), mb.y, mb.task)

    def replay_loss(self, n: int) -> Tensor:
        first = self.memory.sample(n, self.generator)
        second = self.memory.sample(n, self.generator)  # a fresh draw, independent of the first
        return self.logit_replay(first) + self.label_replay(second)
