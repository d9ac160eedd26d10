"""Gradient-based sample selection, greedy variant (GSS-greedy), with experience replay.

Paper: Aljundi, Lin, Goujaud, Bengio, "Gradient based sample selection for online continual
learning", NeurIPS 2019.

GSS changes which samples the buffer keeps, not how it is replayed. It casts buffer selection as
keeping the stored samples' gradients as diverse as possible; its greedy variant scores each
incoming sample by ``c = 1 + max_j cos(g, g_j)``, the largest cosine similarity of its loss
gradient ``g`` to the gradients of ``n`` buffer samples drawn at random. While the buffer fills
every sample is stored; once it is full, only a sample with ``c < 1`` is a candidate: it picks a
stored sample ``i`` with probability ``C_i / Σ C`` (the most redundant are picked most often) and
replaces it with probability ``C_i / (C_i + c)`` (:class:`~lifelong.learn.memory.GradientScoredMemory`).
Training is rehearsal: each step adds the cross-entropy on a uniform replay batch from the buffer
to the incoming batch's.

Settings: class-, task- and domain-incremental, online/task-free (it needs no boundaries); the
paper's setting is online, with small incoming batches.

Cost: each step adds the per-sample gradient cosines of the incoming batch against a few random
buffer subsets. On MLPs they come from one forward-backward pass on the joined batch (the Gram
matrix of per-sample gradients, ``lifelong.learn.persample``); on other networks from ``torch.func``
per-sample gradients, which cost a multiple of a step.

Deviations
----------
- As in ER here, the incoming and replay losses are two means added, not one mean over the joined
  batch; the replay batch defaults to the incoming batch size.
- The gradients are those of the per-sample cross-entropy over every trainable parameter, taken
  after the step (the buffer is written after the update, as in ER). On a network with BatchNorm
  they are taken in evaluation mode (a single sample has no batch statistics).
- One random buffer subset (``score_subset`` samples, default 10) scores a whole incoming batch,
  and the stored scores are never recomputed (as in the paper's Algorithm 2); the candidates of one
  batch are admitted in order, each against the scores left by the one before.
- The first sample, offered to an empty buffer, gets the score 0.1 (the Mammoth implementation's
  choice; the paper does not say).
- Only GSS-greedy; the paper's constrained-optimisation variants (GSS-IQP, GSS-Clust) are not
  implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.memory import GradientScoredMemory
from lifelong.learn.methods.er import ER
from lifelong.learn.nets import has_batch_statistics
from lifelong.learn.persample import linear_sample_grad_gram
from lifelong.seeding import derive_seed


class GSS(ER):
    """Memory: gradient-scored (GSS-greedy). Terms: ``CE(batch) + CE(replay batch)``."""

    name = "gss"
    description = "GSS-greedy: the buffer keeps samples whose gradients point away from the stored ones; ER replay"
    paper = "Aljundi et al. 2019, Gradient based sample selection for online continual learning (NeurIPS)"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, score_subset: int = 10,
                 replay_batch: int | None = None, **base) -> None:
        if score_subset < 1:
            raise ConfigError(f"gss: score_subset must be >= 1, got {score_subset}")
        super().__init__(model, mem_size=mem_size, replay_batch=replay_batch, **base)  # ER's terms and step
        self.score_subset = score_subset
        self.memory = GradientScoredMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device,
                                           subset=score_subset)  # in place of ER's reservoir
        self.memory.scorer = self.gradient_cosine

    def sample_gradients(self, batch: Batch) -> Tensor:
        """``(n, P)`` the loss gradient of each sample of ``batch`` over every trainable parameter."""
        params = {k: p.detach() for k, p in self.model.named_parameters() if p.requires_grad}
        buffers = {k: b.detach() for k, b in self.model.named_buffers()}
        mask = None if batch.task is None else self.allowed_classes(batch.task, len(batch))

        def loss(p: dict[str, Tensor], x: Tensor, y: Tensor, allowed: Tensor | None) -> Tensor:
            logits = functional_call(self.model, {**p, **buffers}, (x.unsqueeze(0),))
            if allowed is not None:
                logits = logits.masked_fill(~allowed.unsqueeze(0), float("-inf"))
            return F.cross_entropy(logits, y.unsqueeze(0))

        was_training = self.model.training
        if was_training and has_batch_statistics(self.model):
            self.model.eval()
        try:
            if mask is None:
                g = vmap(grad(lambda p, x, y: loss(p, x, y, None)), in_dims=(None, 0, 0))(params, batch.x, batch.y)
            else:
                g = vmap(grad(loss), in_dims=(None, 0, 0, 0))(params, batch.x, batch.y, mask)
        finally:
            if was_training and not self.model.training:
                self.model.train()
        return torch.cat([g[k].reshape(len(batch), -1) for k in params], 1)

    def gradient_cosine(self, candidates: Batch, subset: Batch) -> Tensor:
        """(B,) the largest cosine similarity of each candidate's gradient to the subset's.

        On a network of linear layers without batch statistics (the MLPs) the inner products come
        from the Gram matrix of the joined batch's per-sample gradients, from one forward and one
        backward pass (:func:`~lifelong.learn.persample.linear_sample_grad_gram`); elsewhere from
        the per-sample gradients themselves (``torch.func``)."""
        b = len(candidates)
        joined = Batch(torch.cat([candidates.x, subset.x]), torch.cat([candidates.y, subset.y]),
                       None if candidates.task is None or subset.task is None
                       else torch.cat([candidates.task, subset.task]))
        gram = linear_sample_grad_gram(
            self.model, joined.x,
            lambda out: F.cross_entropy(self.mask(out, joined.task), joined.y, reduction="sum"))
        if gram is None:
            g = self.sample_gradients(joined)
            gram = g @ g.T
        norms = gram.diagonal().clamp_min(1e-30).sqrt()
        cos = gram[:b, b:] / (norms[:b, None] * norms[None, b:])
        return cos.max(1).values
