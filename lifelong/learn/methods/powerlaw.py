"""Power-law rehearsal: replay past chunks with the statistics of a naturalistic environment.

Seed paper: "Catastrophic Interference is Mitigated in Naturalistic Power-Law Learning
Environments" (2024; the seed paper named in REFERENCE.md). There, the chance of meeting an old task again falls off as
a power law of the time since it was last met (the environmental statistics of Anderson & Schooler,
1991), and interference is mitigated when training follows that law. We turn the law into a
rehearsal schedule over an episodic memory.

Each stored sample carries the index of the chunk (``group``) it came from. At step ``t`` every
*past* group ``c`` with stored samples has a last-met time ``τ_c``: the last step at which it was
trained on, as incoming data or as replay. Each step draws one group,

``P(c) ∝ (1 + t − τ_c)^(−α)``   (``α = exponent``),

and the replay batch is drawn uniformly among that group's stored samples; only the drawn group's
clock resets (``τ_c = t``), so the other groups age and the law decides which one comes back. The
loss is the cross-entropy on the incoming batch plus the cross-entropy on that replay batch (as in
ER). The memory is a reservoir buffer over the whole stream. ``replay_counts`` (per group) records
how often each group was drawn.

Groups are chunks: ``end_chunk`` starts a new one. In task-free streams (no boundaries) set
``segment`` to start a new group every ``segment`` steps instead: then groups are segments only,
``end_chunk`` leaves them alone and the learner needs no boundaries. With ``segment = 0`` it needs
boundaries (the loop refuses it on task-free streams: there would be one group and no past).

Settings: class-, task- and domain-incremental; online/task-free with ``segment > 0``.

Deviations
----------
- The paper shapes the *environment* (which task the learner meets); here the stream is given and
  the law shapes only what is rehearsed from memory.
- The current group is never replayed (it is being met now); the first chunk trains without replay.
- One group per step, not per sample: with a group per replay sample every group is drawn (and
  its clock reset) at nearly every step, all ages stay 1 and ``α`` changes nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.terms import IncomingCE, StepContext, Term
from lifelong.seeding import derive_seed


class PowerLawReplay(Term):
    """``CE(f(x_m), y_m)`` on a replay batch drawn by :meth:`PowerLaw.draw_replay`; nothing while
    no past group has stored samples."""

    name = "powerlaw_replay"
    draws = True

    def __init__(self, *, replay_batch: int | None = None) -> None:
        self.replay_batch = replay_batch

    def draw(self, learner: Learner, n_incoming: int) -> list[Batch]:
        if not len(learner.past_groups()):
            return []
        return [learner.draw_replay(self.replay_batch or n_incoming)]

    def __call__(self, ctx: StepContext) -> Tensor | None:
        pairs = self.replayed(ctx)
        if not pairs:
            return None
        mb, logits = pairs[0]
        return ctx.learner.ce(logits, mb.y, mb.task)


class PowerLaw(Learner):
    name = "powerlaw"
    description = "power-law rehearsal: replay a past chunk with P ∝ (1 + time since last met)^-α"
    paper = "after Catastrophic Interference is Mitigated in Naturalistic Power-Law Learning Environments (2024)"
    needs_boundaries = True  # a boundary starts a new group (instances with segment > 0: False)

    def __init__(
        self,
        model: nn.Module,
        *,
        mem_size: int = 500,
        replay_batch: int | None = None,
        exponent: float = 1.0,
        segment: int = 0,
        **base,
    ) -> None:
        super().__init__(model, **base)
        if exponent < 0 or segment < 0:
            raise ConfigError(f"powerlaw: exponent and segment must be >= 0, got {exponent} and {segment}")
        self.mem_size, self.replay_batch, self.exponent, self.segment = mem_size, replay_batch, exponent, segment
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        self.group = 0  # the current group (chunk) id
        self.t = 0  # steps taken
        self.last_met = torch.zeros(1, dtype=torch.int64)  # (n_groups,) τ_c
        self.replay_counts = torch.zeros(1, dtype=torch.int64)  # (n_groups,) steps that replayed group c
        self.compose(IncomingCE(), PowerLawReplay(replay_batch=replay_batch))
        if segment:  # groups are segments: end_chunk has no work of its own
            self.needs_boundaries = any(t.needs_boundaries for t in self.loss_terms)

    def past_groups(self) -> Tensor:
        """Ids of past groups that still have samples in memory, ascending. (G,)"""
        if len(self.memory) == 0:
            return torch.zeros(0, dtype=torch.int64)
        stored = self.memory.fields["group"][: len(self.memory)].unique()
        return stored[stored < self.group].cpu()  # the schedule's bookkeeping is on the host

    def replay_probabilities(self) -> tuple[Tensor, Tensor]:
        """``(groups, P)``: the replayable groups and ``P(c) ∝ (1 + t − τ_c)^(−α)``."""
        groups = self.past_groups()
        age = (self.t - self.last_met[groups]).to(torch.float64)
        w = (1.0 + age) ** (-self.exponent)
        return groups, w / w.sum()

    def draw_replay(self, n: int) -> Batch:
        """``n`` replay samples of one group drawn from ``P`` (uniform among its stored samples);
        only that group's clock resets."""
        groups, p = self.replay_probabilities()
        g = int(groups[torch.multinomial(p, 1, generator=self.generator)])
        members = (self.memory.fields["group"][: len(self.memory)] == g).nonzero().flatten()
        slots = members[torch.randint(len(members), (n,), generator=self.generator)]
        self.last_met[g] = self.t
        self.replay_counts[g] += 1
        return self.memory.get(slots)

    def observe(self, batch: Batch) -> StepStats:
        ctx = self.context(batch)
        loss = self.update(ctx)
        self.memory.add(batch, group=torch.full((len(batch),), self.group, dtype=torch.int64, device=batch.x.device))
        self.last_met[self.group] = self.t
        self.t += 1
        if self.segment and self.t % self.segment == 0:
            self._new_group()
        self.record_seen(batch)
        return self.stats(ctx.logits, batch, loss)

    def _new_group(self) -> None:
        self.group += 1
        self.last_met = torch.cat([self.last_met, torch.tensor([self.t], dtype=torch.int64)])
        self.replay_counts = torch.cat([self.replay_counts, torch.zeros(1, dtype=torch.int64)])

    def end_chunk(self) -> None:
        super().end_chunk()  # the loss terms' boundary work
        if not self.segment:
            self._new_group()

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "group": self.group, "t": self.t, "last_met": self.last_met.clone(),
                "replay_counts": self.replay_counts.clone()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.group, self.t = int(state["group"]), int(state["t"])
        self.last_met = state["last_met"].clone()
        self.replay_counts = state["replay_counts"].clone()
