"""Experience replay with a weighted replay term: ``loss = CE(batch) + w * CE(replay batch)``."""

from torch import nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.terms import IncomingCE, ReplayCE
from lifelong.plugins import register_learner
from lifelong.seeding import derive_seed


@register_learner
class WeightedER(Learner):
    name = "weighted_er"
    description = "experience replay with a weighted replay term"
    paper = "Chaudhry et al. 2019, On Tiny Episodic Memories in Continual Learning"
    needs_boundaries = False  # end_chunk does nothing: fine for task-free streams

    def __init__(self, model: nn.Module, *, mem_size: int = 200, replay_weight: float = 0.5, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.replay_weight = mem_size, replay_weight  # stored under their own names
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"))
        self.compose(IncomingCE(), ReplayCE(weight=replay_weight))  # the loss terms update() adds up

    def observe(self, batch: Batch) -> StepStats:
        ctx = self.context(batch)  # checks labels, training mode, one forward pass: ctx.logits (B, C)
        loss = self.update(ctx)  # one SGD step on the sum of the terms; the incoming batch's loss
        self.memory.add(batch)
        self.record_seen(batch)
        return self.stats(ctx.logits, batch, loss)  # counts on the incoming batch, before the update

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
