"""Averaged gradient episodic memory (A-GEM).

Paper: Chaudhry, Ranzato, Rohrbach, Elhoseiny, "Efficient Lifelong Learning with A-GEM", ICLR 2019.

Each step computes ``g``, the gradient of the loss on the incoming batch, and ``g_ref``, the
gradient of the loss on a batch drawn from the episodic memory, both over the flattened vector of
all parameters. If ``g·g_ref < 0`` the step would raise the average memory loss (to first order),
so ``g`` is projected onto the half-space where it does not:
``g ← g − (g·g_ref)/(g_ref·g_ref)·g_ref``. The SGD step uses that ``g``; the memory loss never
enters the update directly, it only constrains its direction (unlike ER).

Settings: class-, task- and domain-incremental, online/task-free (with the reservoir memory it
needs no boundaries).

Deviations
----------
- Memory: a reservoir buffer over the whole stream. The paper keeps an episodic memory per task,
  with a fixed number of samples of each task, and draws the reference batch from their union.
  Reservoir writing needs no boundaries and matches the other replay methods here.
- ``ref_batch`` defaults to 256, the authors' code's reference batch for MNIST
  (``EPS_MEM_BATCH_SIZE``); it is capped by the memory's size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import Learner, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.memory import ReservoirMemory


def project(g: Tensor, g_ref: Tensor) -> Tensor:
    """A-GEM's projection of a flat gradient ``g`` (P,) against a reference ``g_ref`` (P,).

    Returns ``g`` itself when ``g·g_ref >= 0``; otherwise ``g − (g·g_ref)/(g_ref·g_ref)·g_ref``,
    whose dot product with ``g_ref`` is zero.

    Examples
    --------
    >>> project(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0]))
    tensor([1., 0.])
    >>> project(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]))
    tensor([1., 1.])
    """
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref)) * g_ref


class AGEM(Learner):
    name = "agem"
    description = "A-GEM: projects the gradient so the average memory loss does not increase"
    paper = "Chaudhry et al. 2019, Efficient Lifelong Learning with A-GEM (ICLR)"
    composable = False  # the update is a projected gradient, not a sum of terms

    def __init__(self, model: nn.Module, *, mem_size: int = 500, ref_batch: int = 256, **base) -> None:
        super().__init__(model, **base)
        if ref_batch < 1:
            raise ConfigError(f"agem: ref_batch must be >= 1, got {ref_batch}")
        self.mem_size, self.ref_batch = mem_size, ref_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"))
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def flat_grad(self, loss: Tensor) -> Tensor:
        """The gradient of ``loss`` over every trainable parameter, flattened to (P,)."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(self.params, grads)])

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        logits = self.model(batch.x)
        loss = self.ce(logits, batch.y, batch.task)
        self.check_finite(loss, fix="lower the learning rate")
        g = self.flat_grad(loss)  # (P,)
        if len(self.memory):
            mb = self.memory.sample(self.ref_batch, self.generator)
            g = project(g, self.flat_grad(self.ce(self.model(mb.x), mb.y, mb.task)))
        self.opt.zero_grad(set_to_none=True)
        offset = 0
        for p in self.params:  # write the (projected) flat gradient back, then a plain SGD step
            p.grad = g[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        self.opt.step()
        self.memory.add(batch)
        self.record_seen(batch)
        return self.stats(logits, batch, loss)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
