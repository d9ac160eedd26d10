"""BiC: bias correction.

Paper: Wu, Chen, Wang, Ye, Liu, Guo, Fu, "Large Scale Incremental Learning", CVPR 2019.

- **Exemplars split in two.** A fraction ``val_fraction`` of the memory holds validation
  exemplars, the rest training exemplars (herded, ``m = K_train // t`` per class). Of the new data
  the same fraction is held out as it arrives (never trained on); at each boundary every new class
  puts ``K_val // t`` of its held-out samples into the validation memory, whose old classes are cut
  to as many, so the validation set is balanced over every class seen.
- **Training** (stage 1): each step trains on the incoming training samples joined by a batch of
  training exemplars with ``(1 − λ)·CE + λ·KD``: cross-entropy over the classes seen so far, and
  distillation (temperature 2) on the old classes' logits from the network frozen at the last
  boundary *with its bias layer*, ``λ = n_old / n_seen``.
- **Bias layer** (stage 2, at each boundary with old classes): the network is frozen and two
  scalars ``α, β`` correct the logits of the chunk's new classes, ``α·z + β`` (old classes'
  logits unchanged); they are fitted by cross-entropy on the balanced validation exemplars. The
  corrected logits are the prediction until training resumes.

Settings: class-incremental (the paper's); it needs chunk boundaries, and refuses
domain-incremental streams (``needs_new_classes``).

Deviations
----------
- Streaming: each incoming batch is joined by ``replay_batch`` training exemplars drawn uniformly
  (default: as many as incoming samples); the paper trains epochs over their union. Held-out new
  samples are chosen by a seeded hash of the input (a fraction ``val_fraction`` of them, the same
  ones in every epoch; the paper splits the stored data) and kept in a bounded reservoir of
  ``chunk_buffer`` samples.
- The bias layer is fitted by ``bias_steps`` full-batch gradient steps (learning rate ``bias_lr``)
  from ``α = 1, β = 0``; it is dropped (identity) at the first step of the next chunk, where it
  only remains inside the teacher. Fixed head over every class; unseen classes' logits are left
  out of the softmax.
- ``distill`` and ``correct`` switch the distillation and the bias layer off, for ablations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.exemplars import ExemplarLearner, ExemplarMemory, _take
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.terms import distillation


class BiC(ExemplarLearner):
    name = "bic"
    description = "BiC: herded exemplars, distillation, a two-parameter bias layer on the new classes fitted on held-out exemplars"
    paper = "Wu et al. 2019, Large Scale Incremental Learning (CVPR)"

    def __init__(self, model: nn.Module, *, mem_size: int = 500, replay_batch: int | None = None,
                 chunk_buffer: int = 2000, val_fraction: float = 0.1, temperature: float = 2.0,
                 bias_steps: int = 200, bias_lr: float = 0.05, distill: bool = True, correct: bool = True,
                 **base) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"bic: val_fraction must lie in (0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        super().__init__(model, mem_size=mem_size, replay_batch=replay_batch, chunk_buffer=chunk_buffer, **base)
        self.temperature, self.bias_steps, self.bias_lr = temperature, bias_steps, bias_lr
        self.distill, self.correct = distill, correct
        self.val_capacity = max(1, round(mem_size * val_fraction)) if mem_size else 0
        self.val_exemplars = ExemplarMemory(self.val_capacity, device=self.device)
        self.heldout = ReservoirMemory(chunk_buffer, seed=self.derived("heldout/0"), device=self.device)
        self.split_seed = self.derived("bic-split")  # the split's hash direction comes from it (in the state)
        self._projection: Tensor | None = None
        #: the bias layer: α, β on the logits of ``bias_classes`` (the last chunk's new classes)
        self.alpha, self.beta = 1.0, 0.0
        self.bias_classes = torch.zeros(self.n_classes, dtype=torch.bool, device=self.device)
        self.corrected = False  # whether predict applies the bias layer (until training resumes)

    def exemplar_capacity(self) -> int:
        return self.mem_size - (max(1, round(self.mem_size * self.val_fraction)) if self.mem_size else 0)

    # -- the bias layer -------------------------------------------------------------------------
    def bias_layer(self, logits: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
        """``logits`` with ``α·z + β`` on the ``bias_classes`` columns, the others unchanged."""
        return torch.where(self.bias_classes, alpha * logits + beta, logits)

    def teacher_logits(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.bias_layer(self.teacher(x), self.alpha, self.beta)

    # -- training -------------------------------------------------------------------------------
    def start_step(self) -> None:
        self.corrected = False

    def held_out(self, x: Tensor) -> Tensor:
        """(B,) bool: whether each input belongs to the validation split, by a seeded hash of the
        input itself (a projection on a fixed random direction, its fractional part), so that a
        sample is held out in every epoch or in none."""
        flat = x.reshape(len(x), -1).double()
        if self._projection is None or self._projection.shape[0] != flat.shape[1]:
            g = torch.Generator().manual_seed(self.split_seed)
            self._projection = torch.randn(flat.shape[1], generator=g, dtype=torch.float64).to(flat.device)
        u = torch.frac((flat @ self._projection).abs() * 1000.0)
        return u < self.val_fraction

    def training_mask(self, batch: Batch) -> Tensor:
        hold = self.held_out(batch.x)
        if bool(hold.any()):
            self.heldout.add(_take(batch, hold.nonzero().flatten()))
        return ~hold

    def loss(self, train: Batch, logits: Tensor, active: Tensor, n_incoming: int) -> Tensor:
        ce = self.seen_ce(logits, train.y, active, train.task)
        n_old = int(self.old_classes.sum())
        if not self.distill or self.teacher is None or n_old == 0:
            return ce
        lam = n_old / int(active.sum())
        old = self.teacher_logits(train.x)[:, self.old_classes]
        return (1.0 - lam) * ce + lam * distillation(logits[:, self.old_classes], old, self.temperature)

    # -- the boundary ---------------------------------------------------------------------------
    def update_validation(self) -> None:
        if not len(self.heldout) or self.val_capacity == 0:
            return
        m = self.val_capacity // int(self.seen_classes.sum())
        self.val_exemplars.reduce(m)
        held = self.heldout.all()
        # a sample held out in several epochs was stored once per epoch: keep its first copy
        _, inverse = torch.unique(held.x.reshape(len(held), -1), dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(held), dtype=torch.int64, device=inverse.device)
        first = first.scatter_reduce(0, inverse, torch.arange(len(held), device=inverse.device), reduce="amin")
        held = _take(held, first.sort().values)
        for c in held.y.unique().tolist():
            self.val_exemplars.replace_class(c, _take(held, (held.y == c).nonzero().flatten()[:m]))

    def after_training(self) -> None:
        self.previous_old = self.old_classes.clone()

    def after_boundary(self) -> None:
        self.update_validation()
        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        self.heldout = ReservoirMemory(self.chunk_buffer, seed=seed, device=self.device)
        new = self.old_classes & ~self.previous_old  # old_classes now includes the chunk's classes
        self.alpha, self.beta = 1.0, 0.0
        self.bias_classes = new
        if self.correct and bool(self.previous_old.any()) and bool(new.any()) and len(self.val_exemplars):
            self.alpha, self.beta = self.fit_bias(self.val_exemplars.all())
            self.corrected = True

    @torch.enable_grad()
    def fit_bias(self, val: Batch) -> tuple[float, float]:
        """``α, β`` minimising the cross-entropy of the corrected logits on ``val``, the network frozen."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            z = self.model(val.x)
        self.model.train(was_training)
        params = torch.tensor([1.0, 0.0], device=z.device, requires_grad=True)
        opt = torch.optim.SGD([params], lr=self.bias_lr)
        for _ in range(self.bias_steps):
            out = self.bias_layer(z, params[0], params[1])
            loss = self.seen_ce(out, val.y, self.seen_classes, val.task)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(params[0].detach()), float(params[1].detach())

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        out = super().predict(x, task)
        return self.bias_layer(out, self.alpha, self.beta) if self.corrected else out

    # -- state ----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {**super().extra_state(), "val_exemplars": self.val_exemplars.state_dict(),
                "heldout": self.heldout.state_dict(), "split_seed": self.split_seed,
                "alpha": self.alpha, "beta": self.beta, "bias_classes": self.bias_classes.clone(),
                "corrected": self.corrected}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.val_exemplars.load_state_dict(state["val_exemplars"])
        self.heldout.load_state_dict(state["heldout"])
        self.split_seed, self._projection = int(state["split_seed"]), None
        self.alpha, self.beta = float(state["alpha"]), float(state["beta"])
        self.bias_classes = state["bias_classes"].to(self.device, copy=True)
        self.corrected = bool(state["corrected"])
