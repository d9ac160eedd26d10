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
  (classes not yet met, which relies on class ids arriving in increasing order). By default
  (``incoming_mask = "batch"``) we follow the paper's rule and mask every class absent from the
  incoming batch. ``incoming_mask = "seen"`` is the authors' variant without the ordering
  assumption: only classes met before the batch and absent from it are masked; classes not met
  yet stay in the softmax.
- The two means are added (as in :mod:`lifelong.learn.methods.er`); the replay batch size defaults to
  the incoming batch size.

Limitation: one class per chunk
-------------------------------
With a single class in the incoming batch the ``"batch"`` mask leaves one logit, the incoming
loss is exactly 0 and has no gradient: the new class is learned only through replay, as its
samples enter the reservoir (``"seen"`` has the same problem once every class has been met, i.e.
in the last chunk). The learner still learns, but slowly within each chunk. Split digits
class-IL, 10 chunks of one class, MLP 64-256-256-10, lr 0.05, batch 16, 5 epochs, memory 200,
seeds 0/1: learning accuracy 0.50/0.73 (``"batch"``), 0.49/0.74 (``"seen"``), against 0.96/1.00
for ER; final ACC 0.80/0.75, 0.79/0.78 and 0.84/0.76. With 5 chunks of two classes: learning
accuracy 0.87/0.87 (``"batch"``) against 0.97/0.96 for ER. The paper's benchmarks have at least
two classes per task.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError
from lifelong.learn.methods.er import ER
from lifelong.learn.terms import ReplayCE, StepContext, Term


def mask_absent(logits: Tensor, y: Tensor, keep: Tensor | None = None) -> Tensor:
    """``logits`` (B, C) with the columns of classes absent from ``y`` (B,) set to -inf, except
    the classes in the boolean mask ``keep`` (C,), which stay in the softmax.

    Masked entries get no gradient, so the incoming batch cannot push absent classes down.

    Examples
    --------
    >>> mask_absent(torch.zeros(1, 3), torch.tensor([1]))
    tensor([[-inf, 0., -inf]])
    >>> mask_absent(torch.zeros(1, 3), torch.tensor([1]), keep=torch.tensor([False, False, True]))
    tensor([[-inf, 0., 0.]])
    """
    present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    present[y] = True
    if keep is not None:
        present |= keep
    return logits.masked_fill(~present, float("-inf"))


class AsymmetricCE(Term):
    """ER-ACE's incoming-batch loss: cross-entropy over the classes present in the batch."""

    name = "asymmetric_ce"

    def __init__(self, *, mask: str = "batch") -> None:
        self.mask = mask

    def __call__(self, ctx: StepContext) -> Tensor:
        # "seen": only classes met before this batch (seen_classes is updated after the step) and
        # absent from it are masked; classes not met yet stay in the softmax. "batch": every class
        # absent from the batch is masked.
        keep = ~ctx.learner.seen_classes if self.mask == "seen" else None
        return ctx.learner.ce(mask_absent(ctx.logits, ctx.batch.y, keep), ctx.batch.y, ctx.batch.task)


class ERACE(ER):
    """ER's memory and update; terms: ``asymmetric CE(batch) + CE(replay batch)``."""

    name = "er_ace"
    description = "ER with asymmetric cross-entropy: incoming loss over the batch's classes only"
    paper = "Caccia et al. 2022, New Insights on Reducing Abrupt Representation Change in Online CL (ICLR)"

    def __init__(self, model: nn.Module, *, incoming_mask: str = "batch", **er) -> None:
        super().__init__(model, **er)
        if incoming_mask not in ("seen", "batch"):
            raise ConfigError(f"er_ace: incoming_mask must be 'seen' or 'batch', got {incoming_mask!r}")
        self.incoming_mask = incoming_mask
        self.compose(AsymmetricCE(mask=incoming_mask), ReplayCE(replay_batch=self.replay_batch))
