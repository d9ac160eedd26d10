"""Experience replay (ER) with a reservoir buffer.

Paper: Chaudhry, Rohrbach, Elhoseiny, Ajanthan, Dokania, Torr, Ranzato, "On Tiny Episodic
Memories in Continual Learning", arXiv:1902.10486 (2019).

Each step adds the cross-entropy on a replay batch, drawn uniformly from the memory, to the
cross-entropy on the incoming batch, then offers the incoming batch to the reservoir.

Settings: class-, task- and domain-incremental, online/task-free (it needs no boundaries).

Deviations
----------
- The paper concatenates the incoming and replay batches into one mean; we add the two means
  (REFERENCE.md's rule), which weights the replay batch equally however small the incoming one is.
- The replay batch size defaults to the incoming batch size (10 in the paper's online setting).
"""

from __future__ import annotations

from torch import nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.terms import IncomingCE, ReplayCE
from lifelong.seeding import derive_seed


class ER(Learner):
    """Memory: a reservoir buffer. Terms: ``CE(batch) + CE(replay batch)``."""

    name = "er"
    description = "experience replay from a reservoir buffer"
    paper = "Chaudhry et al. 2019, On Tiny Episodic Memories in Continual Learning"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.replay_batch = mem_size, replay_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        self.compose(IncomingCE(), ReplayCE(replay_batch=replay_batch))

    def observe(self, batch: Batch) -> StepStats:
        ctx = self.context(batch)
        loss = self.update(ctx)
        self.memory.add(batch)
        self.record_seen(batch)
        return self.stats(ctx.logits, batch, loss)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
