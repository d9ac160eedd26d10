"""Supervised contrastive replay (SCR) with a nearest-class-mean classifier.

Paper: Mai, Li, Kim, Sanner, "Supervised Contrastive Replay: Revisiting the Nearest Class Mean
Classifier in Online Class-Incremental Continual Learning", CVPR Workshops (2021).

Each step joins the incoming batch with a replay batch drawn uniformly from a reservoir buffer,
makes two views of the joined batch (the inputs and an augmented copy), and trains the backbone
and a projection head ``g`` on the supervised contrastive loss (SupCon, Khosla et al. 2020) of the
normalised projections ``z = g(h(x)) / ||g(h(x))||`` at temperature ``τ``:
``L = (1/2N) Σ_i −(1/|P(i)|) Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ) )``, where
``P(i)`` are the other samples of anchor ``i``'s class (its own second view among them). The
network's linear head is never trained: prediction is the nearest class mean of the buffer's
normalised backbone features ``h(x)/||h(x)||`` (the means renormalised; ranking by cosine equals
ranking by Euclidean distance between unit vectors).

Settings: class-, task- (the task mask restricts the scores) and domain-incremental,
online/task-free (it needs no boundaries); the paper's setting is online class-incremental.

Cost: each step embeds the incoming batch and a 100-sample replay batch twice (the inputs and their
augmented views), eleven times ER's replay rows at batch 10, and every evaluation first embeds the
whole buffer for the class means. At equal steps SCR is therefore many times ER's wall time (tens
of times online at batch 10 on the MLP, measured under load; BENCHMARKS.md "SCR and GSS"): the
paper's protocol, replay batch included, is kept rather than cut to fit the 2x budget.

Deviations
----------
- Augmentation: the paper composes random resized crops, flips, colour jitter and grayscale on
  images. Image batches ``(B, C, H, W)`` here get the library's batched crop-and-flip
  (:mod:`lifelong.learn.augment`; the run's ``[train] augment`` when set). Flat inputs (the MLP
  benchmarks) get a feature-space augmentation: Gaussian noise of standard deviation
  ``view_noise`` times the joined batch's standard deviation, and each feature zeroed with
  probability ``view_mask``.
- The projection head is ``Linear(d, d)–ReLU–Linear(d, proj_dim)`` on the ``d`` backbone features
  (the authors' code's MLP head); the base temperature factor ``τ/τ_base`` of the SupCon code is 1.
- The step is taken on the incoming batch alone while the buffer is empty (the authors' code skips
  it), and both views go through the network in one call.
- The online accuracy counted during training is the nearest class mean of the replay batch's
  features (a uniform sample of the buffer, already embedded by the step's forward pass), not of
  the whole buffer, so that a step does not embed the whole buffer. Evaluation uses the whole
  buffer; before anything is stored it falls back to the network's untrained linear head.
- A consolidation (sleep) step is one SupCon step on a batch from the buffer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.augment import AUGMENTATIONS
from lifelong.learn.base import Learner, SleepStats, StepStats
from lifelong.learn.frozen import cosine_scores
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.nets import init_parameters
from lifelong.seeding import derive_seed


def supcon_loss(z: Tensor, y: Tensor, temperature: float) -> Tensor:
    """The supervised contrastive loss of unit vectors ``z`` (M, d) with labels ``y`` (M,): the mean
    over anchors that have a positive of ``−mean_{p∈P(i)} log softmax_{a≠i}(z_i·z_a/τ)[p]``."""
    sim = z @ z.T / temperature  # (M, M)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    mean_log_prob = (log_prob * pos).sum(1)[has] / n_pos[has]
    return -mean_log_prob.mean()


class SCR(Learner):
    """Memory: a reservoir buffer. Objective: SupCon on (incoming + replay) × 2 views; NCM prediction."""

    name = "scr"
    description = "SCR: supervised contrastive replay with a projection head; nearest class mean of the buffer"
    paper = "Mai et al. 2021, Supervised Contrastive Replay (CVPR-W)"
    composable = False
    augments = True
    needs_features = True

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int = 100, temperature: float = 0.07,
                 proj_dim: int = 128, view_noise: float = 0.1, view_mask: float = 0.1, **base) -> None:
        super().__init__(model, **base)
        if replay_batch < 1:
            raise ConfigError(f"scr: replay_batch must be >= 1, got {replay_batch}")
        if not temperature > 0:
            raise ConfigError(f"scr: temperature must be > 0, got {temperature}")
        if proj_dim < 1:
            raise ConfigError(f"scr: proj_dim must be >= 1, got {proj_dim}")
        if view_noise < 0 or not 0 <= view_mask < 1:
            raise ConfigError(f"scr: view_noise must be >= 0 and view_mask in [0, 1), got {view_noise}, {view_mask}")
        self.mem_size, self.replay_batch, self.temperature = mem_size, replay_batch, temperature
        self.proj_dim, self.view_noise, self.view_mask = proj_dim, view_noise, view_mask
        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        d = model.head.in_features
        with torch.device("meta"):
            proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj_dim))
        self.projection = proj.to_empty(device=self.device)
        init_parameters(self.projection, torch.Generator().manual_seed(derive_seed(self.seed, "projection")))
        self.opt = torch.optim.SGD([*model.parameters(), *self.projection.parameters()], lr=self.lr,
                                   momentum=self.momentum, weight_decay=self.weight_decay)

    # -- the two views and the loss ---------------------------------------------------------------
    def second_view(self, x: Tensor) -> Tensor:
        """An augmented copy of ``x``: crop-and-flip for images, noise and masking for flat inputs."""
        if self.augmenter is not None:
            return self.augmenter(x, self.aug_generator)
        if x.ndim == 4:
            return AUGMENTATIONS["crop_flip"](x, self.aug_generator)
        noise = torch.randn(x.shape, generator=self.aug_generator).to(x.device)
        keep = (torch.rand(x.shape, generator=self.aug_generator) >= self.view_mask).to(x.device)
        return (x + self.view_noise * x.std() * noise) * keep

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone features ``h(x)`` and the normalised projections of ``x``."""
        h = self.model.features(x)
        return h, F.normalize(self.projection(h), dim=1)

    def contrastive_step(self, batch: Batch) -> tuple[Tensor, Tensor, Batch | None]:
        """Draw the replay batch, compute SupCon over both views of incoming + replay, and step.
        Returns the loss, the first view's features (before the step) and the replay batch."""
        replay = self.memory.sample(self.replay_batch, self.generator) if len(self.memory) else None
        x, y = batch.x, batch.y
        if replay is not None:
            x, y = torch.cat([x, replay.x]), torch.cat([y, replay.y])
        h, z = self.embed(torch.cat([x, self.second_view(x)]))
        loss = supcon_loss(z, torch.cat([y, y]), self.temperature)
        self.check_finite(loss, fix="lower the learning rate or raise the temperature")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss, h[: len(x)].detach(), replay

    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        loss, h, replay = self.contrastive_step(batch)
        n = len(batch)
        if replay is None:
            logits = torch.zeros(n, self.n_classes, device=self.device)
        else:
            logits = self.ncm_scores(h[:n], h[n:], replay.y)
        self.memory.add(batch)
        self.record_seen(batch)
        return self.stats(logits, batch, loss)

    def consolidate(self, batch: Batch, generator: torch.Generator | None = None) -> SleepStats:
        """One SupCon step on ``len(batch)`` buffer samples (``batch`` itself while the buffer is empty);
        the counts are the NCM's predictions of those samples before the step."""
        source = "rehearsal"
        if len(self.memory):
            batch, source = self.memory.sample(len(batch), generator or self.generator), "memory"
        self.check_batch(batch)
        n_correct = int((self.mask(self.predict(batch.x), batch.task).argmax(1) == batch.y).sum())  # before the step
        self.train_mode()
        _, z = self.embed(torch.cat([batch.x, self.second_view(batch.x)]))
        loss = supcon_loss(z, torch.cat([batch.y, batch.y]), self.temperature)
        self.step(loss)
        return SleepStats(len(batch), n_correct, float(loss.detach()) * len(batch), source=source)

    # -- the nearest-class-mean classifier ----------------------------------------------------------
    def ncm_scores(self, h: Tensor, h_ref: Tensor, y_ref: Tensor) -> Tensor:
        """(B, C) cosine of features ``h`` to the renormalised class means of the normalised
        reference features ``h_ref`` with labels ``y_ref``; classes without a reference score lowest."""
        u = F.normalize(h_ref.float(), dim=1)
        sums = torch.zeros(self.n_classes, u.shape[1], device=u.device).index_add_(0, y_ref, u)
        has = torch.bincount(y_ref, minlength=self.n_classes) > 0
        return cosine_scores(h.float(), sums, has)

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            if not len(self.memory):
                return self.mask(self.model(x), task)
            stored = self.memory.all()
            return self.mask(self.ncm_scores(self.model.features(x), self.model.features(stored.x), stored.y), task)
        finally:
            if was_training:
                self.model.train()

    def extra_state(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "projection": self.projection.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.projection.load_state_dict(state["projection"])
