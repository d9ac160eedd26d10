"""The Learner protocol and the small helpers that every method shares.

A method is a small class: keyword-only hyper-parameters stored under their own names, an
``observe`` that reads like the paper's update rule, and, if it needs one, an ``end_chunk``.
:class:`Learner` only supplies plumbing (optimiser, generator, task masking, step statistics and
state dicts); it is not a hook template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError, DataError, LifelongError
from lifelong.seeding import derive_seed


class TrainingDiverged(LifelongError):
    """The loss became NaN or infinite: the hyper-parameters make SGD diverge."""


@dataclass(frozen=True)
class StepStats:
    """Raw counts on the incoming batch, measured by the forward pass before the update."""

    n: int
    n_correct: int
    loss_sum: float


@runtime_checkable
class LearnerProtocol(Protocol):
    def observe(self, batch: Batch) -> StepStats: ...
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor: ...
    def end_chunk(self) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Learner:
    """Shared plumbing for methods trained by SGD on a :class:`~lifelong.learn.nets.Net`.

    Parameters
    ----------
    model
        the network; its ``forward`` gives logits over every class (a single head).
    lr, momentum, weight_decay
        plain SGD, as in the papers' MLP benchmarks.
    seed
        seeds ``self.generator`` and, through :func:`derive_seed`, every other random stream.
    task_classes
        for task-incremental scenarios: the classes of each task. Logits outside a sample's task
        are masked in the loss and at prediction (a multi-head network by declared masking).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: "stream" trains on the chunks as they come; "cumulative" and "joint" are oracles that
    #: see the union of chunks so far, or every chunk at once (the loop builds those views).
    data_view: ClassVar[str] = "stream"

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 0.05,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
        task_classes: list[tuple[int, ...]] | None = None,
    ) -> None:
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.model = model
        self.lr, self.momentum, self.weight_decay, self.seed = lr, momentum, weight_decay, seed
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.generator = torch.Generator().manual_seed(derive_seed(seed, "learner"))
        self.n_classes = int(self._out_features())
        self.task_classes = task_classes
        self._task_mask: Tensor | None = None
        if task_classes is not None:
            mask = torch.zeros(len(task_classes), self.n_classes, dtype=torch.bool)
            for t, cs in enumerate(task_classes):
                mask[t, list(cs)] = True
            self._task_mask = mask
        self.seen_classes = torch.zeros(self.n_classes, dtype=torch.bool)
        self.n_observed = 0

    def _out_features(self) -> int:
        head = getattr(self.model, "head", None)
        if isinstance(head, nn.Linear):
            return head.out_features
        raise ConfigError("the model needs a linear `head` attribute giving its number of classes")

    # -- helpers the methods call -------------------------------------------------------------
    def check_batch(self, batch: Batch) -> None:
        if batch.y.numel() and (int(batch.y.min()) < 0 or int(batch.y.max()) >= self.n_classes):
            raise DataError(f"labels must lie in [0, {self.n_classes - 1}], got {batch.y.min()}..{batch.y.max()}")

    def train_mode(self) -> None:
        """Put the model in training mode; a no-op (no module walk) when it already is."""
        if not self.model.training:
            self.model.train()

    def allowed_classes(self, task: Tensor | None, n: int) -> Tensor:
        """``(n, n_classes)`` bool: the classes each sample may be predicted as (all of them unless
        the scenario declares tasks)."""
        if task is None or self._task_mask is None:
            return torch.ones(n, self.n_classes, dtype=torch.bool)
        return self._task_mask[task]

    def mask(self, logits: Tensor, task: Tensor | None) -> Tensor:
        """Logits with classes outside each sample's task set to -inf (task-incremental only)."""
        if task is None or self._task_mask is None:
            return logits
        return logits.masked_fill(~self._task_mask[task], float("-inf"))

    def ce(self, logits: Tensor, y: Tensor, task: Tensor | None = None) -> Tensor:
        """Mean cross-entropy, restricted to the sample's task where the scenario declares one."""
        return F.cross_entropy(self.mask(logits, task), y)

    def check_finite(self, loss: Tensor, what: str = "training loss", fix: str = "lower the learning rate or "
                     "the method's regularisation strength") -> None:
        """Raise :class:`TrainingDiverged` when ``loss`` is NaN or infinite."""
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"{self.name}: the {what} became {float(loss.detach())} after {self.n_observed} samples; {fix}"
            )

    def replay_ce(self, memory, n: int) -> Tensor:
        """ER's replay term: cross-entropy on ``n`` samples drawn from ``memory`` with
        ``self.generator``; an exact zero while the memory is empty."""
        if not len(memory):
            return torch.zeros(())
        mb = memory.sample(n, self.generator)
        return self.ce(self.model(mb.x), mb.y, mb.task)

    def step(self, loss: Tensor) -> None:
        self.check_finite(loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def stats(self, logits: Tensor, batch: Batch, loss: Tensor) -> StepStats:
        """Counts on the incoming batch; ``loss`` is its mean loss (without replay or penalties)."""
        self.seen_classes[batch.y] = True
        self.n_observed += len(batch)
        pred = self.mask(logits.detach(), batch.task).argmax(1)
        return StepStats(len(batch), int((pred == batch.y).sum()), float(loss.detach()) * len(batch))

    # -- the protocol ---------------------------------------------------------------------------
    def observe(self, batch: Batch) -> StepStats:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """Logits ``(B, n_classes)``; -inf outside the sample's task in task-incremental runs."""
        was_training = self.model.training
        if was_training:
            self.model.eval()
        out = self.mask(self.model(x), task)
        if was_training:
            self.model.train()
        return out

    def end_chunk(self) -> None:
        """Boundary work; the base learner has none. Never called in task-free streams."""

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state to checkpoint (tensors, numbers, nested dicts of them)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "seen_classes": self.seen_classes.clone(),
            "n_observed": self.n_observed,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])
        self.seen_classes = state["seen_classes"].clone()
        self.n_observed = int(state["n_observed"])
        self.load_extra_state(state["extra"])
