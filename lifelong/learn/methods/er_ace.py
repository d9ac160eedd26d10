"""Experience replay with asymmetric cross-entropy (ER-ACE).

Paper: Caccia, Aljundi, Asadi, Tuytelaars, Pineau, Belilovsky, "New Insights on Reducing Abrupt
Representation Change in Online Continual Learning", ICLR 2022.

On the incoming batch the cross-entropy is restricted to the classes present in that batch: the
other logits are masked out of the softmax, so new classes do not push the logits (and the
representation) of absent old classes down. On the replay batch, drawn from a reservoir buffer,
the full cross-entropy is used. The loss is the sum of the two.

Settings: class-, task- and domain-incremental, online/task-free (no boundaries needed). In
task-incremental runs the task mask and the present-class mask are combined.

Deviations
----------
- The authors' code also leaves unmasked every class whose id exceeds the largest id seen so far
  (classes not yet met, which relies on class ids arriving in increasing order). We follow the
  paper's rule and mask every class absent from the incoming batch.
- The two means are added (as in :mod:`lifelong.learn.methods.er`); the replay batch size defaults to
  the incoming batch size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.learn.methods.er import ER
from lifelong.learn.terms import ReplayCE, StepContext, Term


def mask_absent(logits: Tensor, y: Tensor) -> Tensor:
    """``logits`` (B, C) with the columns of classes absent from ``y`` (B,) set to -inf.

    Masked entries get no gradient, so the incoming batch cannot push absent classes down.

    Examples
    --------
    >>> mask_absent(torch.zeros(1, 3), torch.tensor([1]))
    tensor([[-inf, 0., -inf]])
    """
    present = torch.zeros(logits.shape[1], dtype=torch.bool)
    present[y] = True
    return logits.masked_fill(~present, float("-inf"))


class AsymmetricCE(Term):
    """ER-ACE's incoming-batch loss: cross-entropy over the classes present in the batch."""

    name = "asymmetric_ce"

    def __call__(self, ctx: StepContext) -> Tensor:
        return ctx.learner.ce(mask_absent(ctx.logits, ctx.batch.y), ctx.batch.y, ctx.batch.task)


class ERACE(ER):
    """ER's memory and update; terms: ``asymmetric CE(batch) + CE(replay batch)``."""

    name = "er_ace"
    description = "ER with asymmetric cross-entropy: incoming loss over the batch's classes only"
    paper = "Caccia et al. 2022, New Insights on Reducing Abrupt Representation Change in Online CL (ICLR)"

    def __init__(self, model: nn.Module, **er) -> None:
        super().__init__(model, **er)
        self.compose(AsymmetricCE(), ReplayCE(replay_batch=self.replay_batch))
