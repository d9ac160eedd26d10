"""CLS: the flagship complementary-learning-systems learner (our composition).

Papers it composes (each part is the shared part named, not a copy of another method's file):

- **Slow network, replay of labels and logits**: DER++ (Buzzega et al., "Dark Experience for
  General Continual Learning", NeurIPS 2020), through :class:`~lifelong.learn.methods.der.LogitReplay`:
  ``α·MSE(f(x_m), z_m) + β·CE(f(x'_m), y'_m)`` on two replay batches of a reservoir buffer.
- **Fast and slow weight averages**: CLS-ER (Arani et al., "Learning Fast, Learning Slow", ICLR
  2022). Two exponential averages of the working weights; the slow one is the inference model.
- **Error memory**: ReLoop2 (Zhu et al., KDD 2023), through
  :class:`~lifelong.learn.methods.error_memory.ResidualStore`: residuals ``onehot(y) − softmax``
  of the inference model's poor predictions, keyed by its normalised hidden features, correct the
  output of nearby inputs at once, before gradient steps catch up.
- **Surprise-driven plasticity**: after the homeostatic rule of
  :mod:`lifelong.learn.methods.homeostatic` (Man, Damasio & Neven 2022), on the loss.
- **Self-supervised consolidation**: a consistency loss between two augmented views, the student
  (working network) on one and the fast average on the other, as in Mean Teacher (Tarvainen &
  Valpola, NeurIPS 2017) and the view-consistency objectives of DualNet (Pham et al., NeurIPS 2021)
  and CaSSLe (Fini et al., CVPR 2022). It needs no labels.
- **Rehearsal weighted by forgetting**: replay samples are drawn with probability rising with their
  last measured loss, as in prioritised experience replay (Schaul et al., ICLR 2016) and
  loss-aware buffer sampling in continual learning (e.g. Aljundi et al., MIR, NeurIPS 2019).

Update rule (one SGD step per incoming batch ``(x, y)``, ``B`` samples; ``t`` counts steps)
--------------------------------------------------------------------------------------------

1. **Surprise.** ``ℓ_t`` is the incoming batch's mean cross-entropy before the step. Fast and slow
   averages ``f ← f + max(β_f, 1/t)(ℓ_t − f)``, ``s ← s + max(β_s, 1/t)(ℓ_t − s)`` (running means
   until the rate takes over, so a short stream's set point is its mean loss) give the multiplier
   ``m_t = clip((f + ε)/(s + ε), 1, m_max)``; the step's learning rate is ``lr·m_t``. A shift of any
   kind (new classes, a new domain, a relabelled concept) raises the loss before the error rate
   saturates, so no chunk boundary is needed.
2. **Error memory.** While surprised (``m_t > 1``), the inference model's predictions on ``x`` that
   are wrong or unsure (true-label probability < 0.5) store their residuals (FIFO ring, fading with
   half-life ``error_half_life`` steps).
3. **Loss.** ``CE(f(x), y) + α·MSE(f(x_m), z_m) + β·CE(f(x'_m), y'_m) + λ_c·MSE(f([x; x_m]), f̄_fast([v; v_m]))``,
   where ``(x_m, z_m)`` and ``(x'_m, y'_m)`` are two replay batches drawn with probability
   ``(1 − ρ)/N + ρ·l_i/Σl`` (``l_i``: the sample's cross-entropy when last replayed, or at insertion),
   and ``v, v_m`` are cheap augmented views of ``x, x_m`` (feature noise and masking for vectors, a
   shift of up to two pixels for images). The working network's view is the clean input it already
   computes for the other terms, so the consistency costs one gradient-free forward pass of the fast
   average, not a second forward-backward; it is added every ``consistency_every`` (2) steps, the
   others without it. Both replay batches come from one draw of ``2n`` distinct slots, one read of
   the memory and one block of rows in the step's forward pass; one cross-entropy over them gives
   the label term and the losses written back to the buffer. Unlabelled samples (``y = -1``) enter
   only the consistency term.
6. **Sleep** (``sleep > 0``, off by default). Each unlabelled sample pays ``sleep`` rows of offline
   replay; whenever the credit covers a replay step (``2n`` rows), the learner takes an SGD step on
   the replay term alone (no incoming batch), as hippocampal replay offline. No boundary is needed,
   and a fully labelled stream never sleeps.
4. **Averages.** ``θ̄ ← a_t·θ̄ + (1 − a_t)·θ`` for the fast and the slow average, with
   ``a_t = 1 − 1/h_t`` and the horizon ``h_t = min(h_max, 1 + φ·t)``: each average covers the last
   fraction ``φ`` of the stream until the horizon reaches its cap.
5. **Inference.** ``softmax(f̄_slow(x)) + λ_e·g_t·Σ_k w_k d_k e_k`` (the error memory's correction),
   gated by the surprise ``g_t = (m_t − 1)/(m_max − 1)``, as log-probabilities.

What is new
-----------
- **Horizons as a fraction of the stream** (step 4). CLS-ER's averages use a fixed ``α`` (0.99 /
  0.999 in the paper); on a stream of 50 steps its stable model is still mostly the random start,
  and on 50,000 a horizon of 100 steps is short. Here the horizon grows with the stream (1 step
  after 1 step, about 6 after 50 with ``φ = 0.1``, the cap after ``(h_max − 1)/φ`` steps), so the
  slow model is never older than a tenth of what it has seen.
- **The error memory is gated by surprise** (step 5): it corrects predictions while the loss says a
  shift is under way, and is silent once the slow network has caught up, where the plain ReLoop2
  correction costs final accuracy (error_memory over ER on split digits: 0.872 vs 0.880).
- **One surprise signal for every kind of stream** (step 1): the loss ratio, not a detector with a
  threshold, so it needs no boundary and no tuning per stream.
- The composition itself: DER++'s objective, CLS-ER's averages and a label-free consistency to the
  fast average, in one step with one fused forward pass for the incoming and replay batches.

Defaults are set by design, not tuned on a benchmark: DER++'s ``α = 1, β = 0.5``; ``ρ = 0.5`` (half
uniform, half by loss, so every stored sample keeps a chance); slow average ``φ = 0.1`` capped at
1000 steps, fast average ``φ = 0.5`` capped at 20 (the teacher tracks the working network); surprise
rates 0.3 / 0.02 as homeostatic's, ``m_max = 2``; ReLoop2's error-memory settings; views with noise
0.1·std and 10% of features masked; consistency weight 0.5. Measured against ER, DER++ and CLS-ER
on seven streams, with an ablation, in BENCHMARKS.md ("Flagship learner (issue 14)"): the slow
average is most of the gain on short streams; the view consistency adds nothing measurable on
labelled streams, and the surprise-gated error memory cannot show in final accuracy (it is silent
once the loss settles). Its cost per SGD step against DER++ is in BENCHMARKS.md (the teacher's pass
every second step, one draw for both replay batches and no second view bring it from 2.0–3.1× to
the figures there). The sleep is off by default: on Fashion-MNIST 5k with 10% labels (seeds 0–2)
it lifts final ACC from 0.648 to 0.660 at ``sleep = 3`` and to 0.687 at ``sleep = 10`` (5× the
training time), still below GDumb's 0.768, so it does not pay for its cost.

Semi-supervised streams (``label_fraction < 1``): ``learns_from_unlabelled = True``, so the loop
hands it unlabelled samples (``y = -1``); they train only through the view consistency, and the
buffer, the error memory and the surprise signal take the labelled ones.

Settings: class-, task- and domain-incremental, online/task-free, blurry and concept-drift streams
(no boundaries needed; ``end_chunk`` does nothing). Untested: streams of tens of thousands of steps
(where the averages' caps, not their fractions, set the horizons).

Deviations
----------
- DER++'s two replay batches are drawn by loss priority (``priority = ρ``), not uniformly; ``ρ = 0``
  restores uniform draws. They are one draw of ``2n`` distinct samples split in two (disjoint,
  where DER++ draws them independently), except while the memory holds fewer than ``2n``.
- The views' noise scale is the standard deviation over the incoming and replayed rows together.
- CLS-ER's semantic-consistency term (MSE to the surer of the two averages, on the replay batch) is
  replaced by the view-consistency term to the fast average, on replay and incoming samples alike,
  which needs no label. Of its two views the student's is the identity (the clean input), as in
  Mean Teacher's noise on the teacher side: measured on MNIST-1D online (seeds 0-2), training the
  network on an augmented view as well cost 0.02 of final ACC (0.273 against 0.293 with the clean
  student, 0.294 without the term).
- CLS-ER's stochastic update frequencies are dropped (every step updates both averages; the
  horizon sets their speed).
- ReLoop2's correction is added to the slow average's probabilities and gated by surprise (above);
  keys are the slow average's features.
- The homeostatic rule is applied to the loss rather than the error rate (the loss moves before
  the error rate saturates), with ``m_max = 2``: replay holds the old knowledge, so the step may
  grow less than in homeostatic's replay-free default (5).
"""

from __future__ import annotations

import copy
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.errors import ConfigError, DataError
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory
from lifelong.learn.methods.der import LogitReplay
from lifelong.learn.methods.error_memory import ResidualStore
from lifelong.learn.terms import StepContext, Term
from lifelong.seeding import derive_seed


class WeightAverage:
    """An exponential average of a model's weights whose horizon grows with the stream.

    After ``t`` updates the average's horizon is ``h_t = min(h_max, 1 + fraction·t)`` steps and
    its decay ``a_t = 1 − 1/h_t``; ``fraction = 0`` makes it a copy of the model.

    Examples
    --------
    >>> avg = WeightAverage(nn.Linear(1, 1), fraction=0.1, max_horizon=100.0)
    >>> [round(avg.decay(t), 3) for t in (0, 50, 10_000)]
    [0.0, 0.833, 0.99]
    """

    def __init__(self, model: nn.Module, *, fraction: float, max_horizon: float) -> None:
        self.fraction, self.max_horizon = fraction, max_horizon
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._pairs: tuple | None = None  # (average's parameters, model's detached parameters, model)

    def decay(self, t: int) -> float:
        return 1.0 - 1.0 / min(self.max_horizon, 1.0 + self.fraction * t)

    @torch.no_grad()
    def update(self, model: nn.Module, t: int) -> None:
        """``θ̄ ← a_t·θ̄ + (1 − a_t)·θ`` in one fused pass (``torch._foreach_lerp_``)."""
        if self._pairs is None or self._pairs[2] is not model:
            self._pairs = (list(self.model.parameters()), [p.detach() for p in model.parameters()], model)
        torch._foreach_lerp_(self._pairs[0], self._pairs[1], 1.0 - self.decay(t))


class Surprise:
    """The surprise multiplier ``m = clip((f + ε)/(s + ε), 1, m_max)`` from a fast and a slow average
    of the incoming loss; each is the running mean of the losses so far until its rate (``β_f``,
    ``β_s``) exceeds ``1/n``.

    Examples
    --------
    >>> s = Surprise(fast_rate=0.5, slow_rate=0.01, eps=0.05, max_multiplier=2.0)
    >>> [s.update(0.1) for _ in range(30)][-1]
    1.0
    >>> s.update(2.0), s.gate  # a jump in the loss raises the multiplier (to its cap here)
    (2.0, 1.0)
    """

    def __init__(self, *, fast_rate: float, slow_rate: float, eps: float, max_multiplier: float) -> None:
        self.fast_rate, self.slow_rate, self.eps, self.max_multiplier = fast_rate, slow_rate, eps, max_multiplier
        self.fast = self.slow = 0.0
        self.count = 0
        self.multiplier = 1.0

    def update(self, loss: float) -> float:
        # each average is the running mean until its rate takes over (1/n < rate): the set point of
        # a short stream is its mean loss so far, not its first batch's
        self.count += 1
        self.fast += max(self.fast_rate, 1.0 / self.count) * (loss - self.fast)
        self.slow += max(self.slow_rate, 1.0 / self.count) * (loss - self.slow)
        ratio = (self.fast + self.eps) / (self.slow + self.eps)
        self.multiplier = min(max(ratio, 1.0), self.max_multiplier)
        return self.multiplier

    @property
    def gate(self) -> float:
        """``(m − 1)/(m_max − 1)`` in [0, 1]: how surprised the learner is now (0 without surprise)."""
        return 0.0 if self.max_multiplier <= 1.0 else (self.multiplier - 1.0) / (self.max_multiplier - 1.0)

    def state_dict(self) -> dict:
        return {"fast": self.fast, "slow": self.slow, "count": self.count, "multiplier": self.multiplier}

    def load_state_dict(self, state: dict) -> None:
        self.fast, self.slow = float(state["fast"]), float(state["slow"])
        self.count, self.multiplier = int(state["count"]), float(state["multiplier"])


class PrioritisedLogitReplay(LogitReplay):
    """DER++'s logit and label replay, its two batches drawn with probability
    ``(1 − ρ)/N + ρ·l_i/Σ_j l_j`` over the ``N`` stored samples (``l``: the memory's ``loss``
    field); the replayed samples' cross-entropies are written back to that field.

    Both batches come from one draw of ``2n`` distinct slots (two draws of ``n`` when the memory
    holds fewer than ``2n``), gathered in one read of the memory and forwarded as one batch: the
    first ``n`` rows are the logit batch, the rest the label batch. ``ρ = 0`` is a uniform draw (by
    the same multinomial, so not bit-identical to DER++'s).
    """

    name = "prioritised_logit_replay"

    def __init__(self, *, alpha: float, beta: float, priority: float, replay_batch: int | None = None) -> None:
        super().__init__(alpha=alpha, beta=beta, replay_batch=replay_batch)
        self.priority = priority

    def probabilities(self, memory: ReservoirMemory) -> Tensor:
        """(N,) the draw probability of each stored sample (no host sync: a zero total is uniform)."""
        n = len(memory)
        loss = memory.fields["loss"][:n].clamp(min=0.0)
        if self.priority <= 0:
            return torch.full((n,), 1.0 / n, device=loss.device)
        total = loss.sum()
        share = torch.where(total > 0, loss / total.clamp(min=1e-30), torch.full_like(loss, 1.0 / n))
        return (1.0 - self.priority) / n + self.priority * share

    def draw(self, learner: Learner, n_incoming: int) -> list[Batch]:
        memory = learner.memory
        if not len(memory):
            return []
        n = min(self.replay_batch or n_incoming, len(memory))
        p = self.probabilities(memory).cpu()  # drawn on the host, as every memory draw
        g = learner.generator
        if not self.beta:
            idx = torch.multinomial(p, n, replacement=False, generator=g)
        elif 2 * n <= len(memory):
            idx = torch.multinomial(p, 2 * n, replacement=False, generator=g)
        else:
            idx = torch.cat([torch.multinomial(p, n, replacement=False, generator=g) for _ in range(2)])
        b = memory.get(idx)
        return [Batch(b.x, b.y, b.task, {**b.extras, "slot": idx, "n_logit": n})]

    def __call__(self, ctx: StepContext) -> Tensor | None:
        pairs = self.replayed(ctx)
        if not pairs:
            return None
        mb, z = pairs[0]
        n = int(mb.extras.get("n_logit", len(mb)))
        value = self.alpha * F.mse_loss(z[:n], mb.extras["logits"][:n])
        # one cross-entropy over both batches: the label term's mean and the forgetting signal
        # (each replayed sample's loss now, written back to the memory)
        ce = F.cross_entropy(ctx.learner.mask(z, mb.task), mb.y, reduction="none")
        ctx.learner.memory.update_field("loss", mb.extras["slot"], ce.detach())
        if self.beta and len(mb) > n:
            value = value + self.beta * ce[n:].mean()
        return value


def _shift(x: Tensor, dy: int, dx: int) -> Tensor:
    """``x`` (..., H, W) shifted by (dy, dx) pixels with zero fill."""
    x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if dy:
        x[..., slice(0, dy) if dy > 0 else slice(dy, None), :] = 0
    if dx:
        x[..., slice(0, dx) if dx > 0 else slice(dx, None)] = 0
    return x


def two_views(x: Tensor, generator: torch.Generator, *, noise: float, drop: float,
              bank: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Two cheap random views of ``x`` (N, ...): antithetic noise ``x ± noise·std(x)·z``; for
    vectors, feature masks that drop ``drop`` of the features each, never the same ones (``z' <
    q`` and ``z' > −q`` with ``q`` the standard normal's ``1 − drop`` quantile); for images (N, C,
    H, W) or (N, H, W), an independent shift of up to two pixels each.

    ``z`` and ``z'`` are rows of ``bank`` (R, numel) picked at random, or fresh Gaussian draws
    without a bank: a bank drawn once makes a view cost one index instead of two Gaussian draws
    of the batch's size.
    """
    flat = x.reshape(len(x), -1)
    if bank is None:
        z = torch.randn((2, *flat.shape), generator=generator)
    else:
        z = bank[torch.randint(len(bank), (2, len(x)), generator=generator)]  # (2, N, numel)
    n = z[0] * (noise * float(flat.std())) if noise > 0 and len(x) > 1 else torch.zeros_like(flat)
    v1, v2 = flat + n, flat - n
    if x.dim() < 3 and drop > 0:
        q = NormalDist().inv_cdf(1.0 - drop)
        v1, v2 = v1 * (z[1] < q), v2 * (z[1] > -q)
    v1, v2 = v1.view(x.shape), v2.view(x.shape)
    if x.dim() >= 3:
        dy1, dx1, dy2, dx2 = (int(v) for v in torch.randint(-2, 3, (4,), generator=generator))
        return _shift(v1, dy1, dx1), _shift(v2, dy2, dx2)
    return v1, v2


def teacher_view(x: Tensor, generator: torch.Generator, *, noise: float, drop: float,
                 bank: Tensor | None = None) -> Tensor:
    """The second of :func:`two_views`'s views alone (the only one the learner uses: its student
    sees the clean input): ``x − noise·std(x)·z`` masked by ``z' > −q`` for vectors, a shift of up
    to two pixels for images. The noise scale stays a tensor, so the view needs no host sync."""
    flat = x.reshape(len(x), -1)
    if bank is None:
        z = torch.randn((2, *flat.shape), generator=generator)
    else:
        z = bank[torch.randint(len(bank), (2, len(x)), generator=generator)]  # (2, N, numel)
    v = flat - z[0] * (noise * flat.std()) if noise > 0 and len(x) > 1 else flat
    if x.dim() < 3 and drop > 0:
        v = v * (z[1] > -NormalDist().inv_cdf(1.0 - drop))
    v = v.view(x.shape)
    if x.dim() >= 3:
        dy, dx = (int(u) for u in torch.randint(-2, 3, (2,), generator=generator))
        return _shift(v, dy, dx)
    return v


class ViewConsistency(Term):
    """``weight·MSE(f([x; x_m]), f̄([v; v_m]))``: the working network on the clean incoming batch and
    the replay term's logit batch against the fast average on augmented views of them. Labels are
    not read: the term trains on unlabelled samples as well.

    The student's logits are the step's own (the fused forward pass), so the term adds no
    forward-backward rows: only the fast average's forward pass on the views, without a graph.
    :meth:`CLS.context` makes both views in one call (``second_view``, incoming rows first).
    """

    name = "view_consistency"

    def __init__(self, *, weight: float) -> None:
        self.weight = weight

    def __call__(self, ctx: StepContext) -> Tensor | None:
        learner = ctx.learner
        views = getattr(learner, "second_view", None)
        if self.weight <= 0 or views is None:
            return None
        students = [ctx.logits]
        pairs = ctx.replays.get(id(learner.term("prioritised_logit_replay")))
        if pairs and len(views) > len(ctx.logits):
            mb, z = pairs[0]
            students.append(z[: len(views) - len(ctx.logits)])
        with torch.no_grad():
            target = learner.fast.model(views)  # (B + n, C)
        return self.weight * F.mse_loss(torch.cat(students) if len(students) > 1 else students[0], target)


class LabelledCE(Term):
    """``CE(f(x), y)`` over the incoming samples that carry a label (``y >= 0``); 0 when none does.
    Unlabelled samples (``y = -1``, semi-supervised streams) train through the view consistency.
    :meth:`CLS.observe` computes the per-sample losses once (they also feed the surprise and the
    memory) and leaves them on the context as ``incoming_ce``."""

    name = "ce"

    def __call__(self, ctx: StepContext) -> Tensor:
        per_sample = getattr(ctx, "incoming_ce", None)
        if per_sample is not None:
            return per_sample.mean() if per_sample.numel() else ctx.logits.sum() * 0.0
        y = ctx.batch.y
        labelled = y >= 0
        if bool(labelled.all()):
            return ctx.learner.ce(ctx.logits, y, ctx.batch.task)
        if not bool(labelled.any()):
            return ctx.logits.sum() * 0.0
        task = ctx.batch.task[labelled] if ctx.batch.task is not None else None
        return ctx.learner.ce(ctx.logits[labelled], y[labelled], task)


def _rows(batch: Batch, keep: Tensor) -> Batch:
    return Batch(batch.x[keep], batch.y[keep], batch.task[keep] if batch.task is not None else None)


class CLS(Learner):
    name = "cls"
    description = ("flagship CLS learner: DER++ replay by forgetting, stream-scaled fast/slow weight averages, "
                   "surprise-gated error memory and plasticity, view-consistency (our composition)")
    paper = "our composition of DER++ (Buzzega 2020), CLS-ER (Arani 2022), ReLoop2 (Zhu 2023), Mean Teacher (2017)"
    #: semi-supervised streams: the loop hands it unlabelled samples (y = -1) too
    learns_from_unlabelled = True

    def __init__(
        self,
        model: nn.Module,
        *,
        mem_size: int = 500,
        replay_batch: int | None = None,
        alpha: float = 1.0,
        beta: float = 0.5,
        priority: float = 0.5,
        consistency: float = 0.5,
        consistency_every: int = 2,
        view_noise: float = 0.1,
        view_drop: float = 0.1,
        fast_fraction: float = 0.5,
        fast_horizon: float = 20.0,
        slow_fraction: float = 0.1,
        slow_horizon: float = 1000.0,
        surprise_fast: float = 0.3,
        surprise_slow: float = 0.02,
        surprise_eps: float = 0.05,
        max_multiplier: float = 2.0,
        error_capacity: int = 500,
        error_weight: float = 0.5,
        error_top_k: int = 8,
        error_temperature: float = 0.1,
        error_threshold: float = 0.9,
        error_half_life: float = 50.0,
        sleep: float = 0.0,
        **base,
    ) -> None:
        super().__init__(model, **base)
        if not 0.0 <= priority <= 1.0:
            raise ConfigError(f"cls: priority must lie in [0, 1] (0: uniform replay), got {priority}")
        if fast_fraction < 0 or slow_fraction < 0 or fast_horizon < 1 or slow_horizon < 1:
            raise ConfigError("cls: the averages' fractions must be >= 0 and their horizons >= 1 (1: no averaging)")
        if not (0 < surprise_slow < surprise_fast <= 1) or max_multiplier < 1 or surprise_eps <= 0:
            raise ConfigError("cls: need 0 < surprise_slow < surprise_fast <= 1, surprise_eps > 0 and max_multiplier >= 1")
        if sleep < 0:
            raise ConfigError(f"cls: sleep must be >= 0 (0: no offline replay), got {sleep}")
        if consistency_every < 1:
            raise ConfigError(f"cls: consistency_every must be >= 1 (1: every step), got {consistency_every}")
        if not 0 <= view_drop < 1 or view_noise < 0:
            raise ConfigError("cls: need 0 <= view_drop < 1 and view_noise >= 0")
        self.mem_size, self.replay_batch, self.alpha, self.beta, self.priority = mem_size, replay_batch, alpha, beta, priority
        self.consistency, self.view_noise, self.view_drop = consistency, view_noise, view_drop
        self.consistency_every, self.sleep = consistency_every, sleep
        self.sleep_credit = 0.0  # replay rows the unlabelled samples have paid for, not yet spent
        self.fast_fraction, self.fast_horizon = fast_fraction, fast_horizon
        self.slow_fraction, self.slow_horizon = slow_fraction, slow_horizon
        self.surprise_fast, self.surprise_slow, self.surprise_eps = surprise_fast, surprise_slow, surprise_eps
        self.max_multiplier = max_multiplier
        self.error_capacity, self.error_weight, self.error_top_k = error_capacity, error_weight, error_top_k
        self.error_temperature, self.error_threshold, self.error_half_life = error_temperature, error_threshold, error_half_life

        self.memory = ReservoirMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)  # fields: logits, loss
        self.fast = WeightAverage(model, fraction=fast_fraction, max_horizon=fast_horizon)
        self.slow = WeightAverage(model, fraction=slow_fraction, max_horizon=slow_horizon)
        self.surprise = Surprise(fast_rate=surprise_fast, slow_rate=surprise_slow, eps=surprise_eps,
                                 max_multiplier=max_multiplier)
        self.errors = ResidualStore(error_capacity)
        self.steps = 0
        self.second_view: Tensor | None = None  # the incoming batch's second view, during a step
        self._bank: Tensor | None = None  # (512, numel) noise patterns of the views
        self.compose(LabelledCE(),
                     PrioritisedLogitReplay(alpha=alpha, beta=beta, priority=priority, replay_batch=replay_batch),
                     ViewConsistency(weight=consistency))

    # -- the fast memory ----------------------------------------------------------------------------
    @torch.no_grad()
    def _slow_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The slow average's logits (B, C) and normalised hidden features (B, D) as error-memory keys."""
        net = self.slow.model
        features = getattr(net, "features", None)
        if features is None:
            z = net(x)
            return z, F.normalize(z, dim=1)
        h = features(x).flatten(1)
        return net.head(h), F.normalize(h, dim=1)

    @torch.no_grad()
    def correction(self, keys: Tensor) -> Tensor:
        """The error memory's correction ``λ_e·g·Σ_k w_k d_k e_k`` (B, C); zero when not surprised."""
        weight = self.error_weight * self.surprise.gate
        if weight <= 0 or len(self.errors) == 0:
            return torch.zeros(keys.shape[0], self.n_classes, device=keys.device)
        return weight * self.errors.query(keys, top_k=self.error_top_k, temperature=self.error_temperature,
                                          threshold=self.error_threshold, now=self.steps,
                                          half_life=self.error_half_life)

    @torch.no_grad()
    def _store_errors(self, batch: Batch) -> None:
        z, keys = self._slow_forward(batch.x)
        p = F.softmax(self.mask(z, batch.task), dim=1)
        confidence = p.gather(1, batch.y[:, None]).squeeze(1)
        poor = (p.argmax(1) != batch.y) | (confidence < 0.5)
        if bool(poor.any()):
            residual = F.one_hot(batch.y, self.n_classes).to(p.dtype) - p
            self.errors.add(keys[poor], residual[poor], step=self.steps)

    # -- the protocol ---------------------------------------------------------------------------------
    @property
    def views_on(self) -> bool:
        return self.consistency > 0

    def _view_bank(self, x: Tensor) -> Tensor:
        numel = x[0].numel()
        if self._bank is None or self._bank.shape[1] != numel:
            g = torch.Generator().manual_seed(derive_seed(0, "cls/views"))
            self._bank = torch.randn((512, numel), generator=g)
        return self._bank

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two augmented views of ``x`` (:func:`two_views`): rows of a fixed bank of 512 Gaussian
        patterns (a constant of the method, the same for every seed, so not state), picked by the
        learner's generator."""
        return two_views(x, self.generator, noise=self.view_noise, drop=self.view_drop, bank=self._view_bank(x))

    def teacher_view(self, x: Tensor) -> Tensor:
        """The fast average's view of ``x`` (:func:`teacher_view`, the same bank as :meth:`views`)."""
        return teacher_view(x, self.generator, noise=self.view_noise, drop=self.view_drop, bank=self._view_bank(x))

    def context(self, batch: Batch) -> StepContext:
        """The step's one forward pass (incoming and replay batches); the fast average's view of the
        incoming batch and of the replay term's logit batch, made in one call, is kept in
        ``second_view`` (incoming rows first) for the consistency term."""
        ctx = super().context(batch)
        self.second_view = None
        if self.views_on and self.steps % self.consistency_every == 0:  # the teacher's pass every k-th step
            xs = [batch.x]
            pairs = ctx.replays.get(id(self.term("prioritised_logit_replay")))
            if pairs:
                mb = pairs[0][0]
                xs.append(mb.x[: int(mb.extras.get("n_logit", len(mb)))])
            self.second_view = self.teacher_view(torch.cat(xs) if len(xs) > 1 else xs[0])
        return ctx

    def check_batch(self, batch: Batch) -> None:
        """Labels in ``[0, n_classes)``, or ``-1`` for an unlabelled sample."""
        if batch.y.numel():
            lo, hi = torch.aminmax(batch.y)
            if int(lo) < -1 or int(hi) >= self.n_classes:
                raise DataError(f"labels must lie in [0, {self.n_classes - 1}] (or be -1: unlabelled), "
                                f"got {int(lo)}..{int(hi)}")

    def observe(self, batch: Batch) -> StepStats:
        ctx = self.context(batch)  # incoming and replay batches in one forward pass, and the views
        labelled = batch.y >= 0
        every = bool(labelled.all())
        known = batch if every else _rows(batch, labelled)
        logits = ctx.logits if every else ctx.logits[labelled]
        # (L,) the labelled samples' loss, computed once: the CE term's mean, the surprise, the memory's field
        ctx.incoming_ce = F.cross_entropy(self.mask(logits, known.task), known.y, reduction="none")
        per_sample = ctx.incoming_ce.detach()
        if len(known):
            m = self.surprise.update(float(per_sample.mean()))
            for group in self.opt.param_groups:
                group["lr"] = self.lr * m
            if self.error_weight > 0 and self.surprise.gate > 0:  # the memory records (and corrects) shifts only
                self._store_errors(known)
        loss = self.update(ctx)
        self.memory.add(known, logits=logits.detach(), loss=per_sample)
        self.steps += 1
        self.fast.update(self.model, self.steps)
        self.slow.update(self.model, self.steps)
        self.record_seen(known)
        self.n_observed += len(batch) - len(known)
        if self.sleep > 0 and len(known) < len(batch):
            self.sleep_credit += self.sleep * (len(batch) - len(known))
            self._sleep_steps(len(batch))
        return self.stats(ctx.logits, batch, loss)

    def _sleep_steps(self, n_incoming: int) -> None:
        """Offline replay: while the unlabelled samples' credit covers a step, one SGD step on the
        replay term alone (logit and label batches of the memory, no incoming batch), then the
        averages' update. Streams with every label never sleep."""
        term = self.term("prioritised_logit_replay")
        while len(self.memory) and self.sleep_credit >= 2 * min(term.replay_batch or n_incoming, len(self.memory)):
            drawn = term.draw(self, n_incoming)
            mb = drawn[0]
            self.sleep_credit -= len(mb)
            for group in self.opt.param_groups:
                group["lr"] = self.lr
            ctx = StepContext(self, mb, self.forward(mb.x), replays={id(term): [(mb, None)]}, inputs=mb.x)
            ctx.replays[id(term)] = [(mb, ctx.logits)]
            value = term(ctx)
            if value is None:
                break
            self.step(value)
            self.fast.update(self.model, self.steps)
            self.slow.update(self.model, self.steps)
        for group in self.opt.param_groups:
            group["lr"] = self.lr * self.surprise.multiplier

    @torch.no_grad()
    def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        """The slow average's prediction, corrected by the error memory while surprised."""
        z, keys = self._slow_forward(x)
        z = self.mask(z, task)
        if self.error_weight * self.surprise.gate <= 0 or len(self.errors) == 0:
            return z
        p = F.softmax(z, dim=1) + self.correction(keys)
        return self.mask(torch.log(p.clamp(1e-6, 1.0)), task)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "fast": self.fast.model.state_dict(),
                "slow": self.slow.model.state_dict(), "surprise": self.surprise.state_dict(),
                "errors": self.errors.state_dict(), "steps": self.steps,
                "sleep_credit": self.sleep_credit}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.fast.model.load_state_dict(state["fast"])
        self.slow.model.load_state_dict(state["slow"])
        self.surprise.load_state_dict(state["surprise"])
        self.errors.load_state_dict(state["errors"])
        self.steps = int(state["steps"])
        self.sleep_credit = float(state.get("sleep_credit", 0.0))
        for group in self.opt.param_groups:
            group["lr"] = self.lr * self.surprise.multiplier
