"""Averaged gradient episodic memory (A-GEM), and its A-GEM-R variant.

Paper: Chaudhry, Ranzato, Rohrbach, Elhoseiny, "Efficient Lifelong Learning with A-GEM", ICLR 2019.

Each step computes ``g``, the gradient of the loss on the incoming batch, and ``g_ref``, the
gradient of the loss on a batch drawn from the episodic memory, both over the flattened vector of
all parameters. If ``g·g_ref < 0`` the step would raise the average memory loss (to first order),
so ``g`` is projected onto the half-space where it does not:
``g ← g − (g·g_ref)/(g_ref·g_ref)·g_ref``. The SGD step uses that ``g``; the memory loss never
enters the update directly, it only constrains its direction (unlike ER).

``agem`` is the paper's method: the episodic memory holds samples of *past* chunks only. The
current chunk's samples are kept apart (a reservoir over the chunk) and join the episodic memory at
``end_chunk``; during the first chunk the memory is empty and the update is plain SGD. It needs
announced boundaries (the loop refuses it on task-free streams).

``agem_r`` (:class:`AGEMR`, "A-GEM-R") writes every incoming batch into the reference memory as it
streams (a reservoir over the whole stream), so it projects from the first chunk on, against a
reference that includes the current chunk. It needs no boundaries (online/task-free included).

Settings: class-, task- and domain-incremental (``agem``); also online/task-free (``agem_r``).

Cost: from the second chunk on (from the first for ``agem_r``) each step adds a forward-backward
pass over ``ref_batch`` = 256 memory samples, eight times the incoming batch at batch 32, and the
projection's dot products over flat gradients. At equal steps A-GEM is therefore 2 to 5 times ER's
wall time (``agem_r`` 2.3× on Split Fashion-MNIST, batch 32, load ≈ 6); against its own compute
limit, which includes that pass, it is 1.3× (``benchmarks/speed.py``).

Deviations
----------
- Memory: the paper keeps a fixed number of slots per task. ``agem`` keeps a reservoir of at most
  ``mem_size`` samples of the current chunk and, at each boundary, adds them to a reservoir
  episodic memory of ``mem_size``; with chunks of at least ``mem_size`` samples every past chunk
  holds an equal share in expectation (not exactly).
- ``ref_batch`` defaults to 256, the authors' code's reference batch for MNIST
  (``EPS_MEM_BATCH_SIZE``); it is capped by the memory's size.
- ``agem_r`` is not the paper's method: its reference memory includes the chunk being learned, so
  the projection also protects the current chunk's earlier batches.
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
    """The paper's A-GEM: the reference memory holds past chunks only; it fills at ``end_chunk``."""

    name = "agem"
    description = "A-GEM: projects the gradient so the average loss on past chunks' memory does not increase"
    paper = "Chaudhry et al. 2019, Efficient Lifelong Learning with A-GEM (ICLR)"
    composable = False  # the update is a projected gradient, not a sum of terms
    needs_boundaries = True  # the current chunk joins the episodic memory at its end
    #: True: incoming batches go straight into the reference memory (A-GEM-R).
    write_through = False

    def __init__(self, model: nn.Module, *, mem_size: int = 500, ref_batch: int = 256, **base) -> None:
        super().__init__(model, **base)
        if ref_batch < 1:
            raise ConfigError(f"agem: ref_batch must be >= 1, got {ref_batch}")
        self.mem_size, self.ref_batch = mem_size, ref_batch
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)  # the reference memory
        # the current chunk's samples, apart from the reference memory until the boundary (agem only)
        self.pending = ReservoirMemory(0 if self.write_through else mem_size,
                                       seed=derive_seed(self.seed, "memory/pending"), device=self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.n_reference = 0  # steps that computed g_ref (memory non-empty)
        self.n_projected = 0  # steps whose g was projected (g·g_ref < 0)

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
            g_ref = self.flat_grad(self.ce(self.model(mb.x), mb.y, mb.task))
            self.n_reference += 1
            projected = project(g, g_ref)
            self.n_projected += int(projected is not g)
            g = projected
        self.opt.zero_grad(set_to_none=True)
        offset = 0
        for p in self.params:  # the (projected) flat gradient's views as .grad, then a plain SGD step
            p.grad = g[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self.check_gradients()
        self.opt.step()
        (self.memory if self.write_through else self.pending).add(batch)
        self.record_seen(batch)
        return self.stats(logits, batch, loss)

    def end_chunk(self) -> None:
        """The chunk's kept samples join the episodic memory; a fresh pending buffer starts."""
        super().end_chunk()
        if len(self.pending):
            self.memory.add(self.pending.all())
        self.pending = ReservoirMemory(self.pending.capacity,
                                       seed=derive_seed(self.seed, f"memory/pending/{self.memory.n_seen}"), device=self.device)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "pending": self.pending.state_dict(),
                "n_reference": self.n_reference, "n_projected": self.n_projected}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.pending.load_state_dict(state["pending"])
        self.n_reference, self.n_projected = int(state["n_reference"]), int(state["n_projected"])


class AGEMR(AGEM):
    """A-GEM-R: every incoming batch joins the reference memory at once (a reservoir over the stream)."""

    name = "agem_r"
    description = "A-GEM-R: A-GEM whose reference memory also takes the current chunk as it streams"
    needs_boundaries = False
    write_through = True

    def end_chunk(self) -> None:
        Learner.end_chunk(self)  # only the loss terms' boundary work: the memory is already written
