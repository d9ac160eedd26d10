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

from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.memory import ReservoirMemory


class ER(Learner):
    name = "er"
    description = "experience replay from a reservoir buffer"
    paper = "Chaudhry et al. 2019, On Tiny Episodic Memories in Continual Learning"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.replay_batch = mem_size, replay_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"))

    def incoming_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """The loss on the incoming batch: plain cross-entropy (ER-ACE restricts it)."""
        return self.ce(logits, batch.y, batch.task)

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.incoming_loss(logits, batch)
        total = loss + self.replay_ce(self.memory, self.replay_batch or len(batch))
        self.step(total)
        self.memory.add(batch)
        return self.stats(logits, batch, loss)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
