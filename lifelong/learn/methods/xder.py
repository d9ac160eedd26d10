"""eXtended Dark Experience Replay (X-DER).

Paper: Boschini, Bonicelli, Buzzega, Porrello, Calderara, "Class-Incremental Continual Learning into
the eXtended DER-verse", IEEE TPAMI 45(5), 2023 (arXiv 2201.00766, 2022).

X-DER keeps DER++'s two replay terms and changes what the stored logits say about classes that were
not known when a sample was stored. With ``past`` the classes of earlier chunks, ``current`` those
of this chunk and ``future`` the classes not yet seen, one step on an incoming batch ``(x, y)`` and
two replay batches ``(x_m, y_m, z_m)``, ``(x'_m, y'_m)`` is:

- **stream loss**: ``CE(f(x)[current], y)``, the cross-entropy over the current classes only;
- **DER replay**: ``α·MSE(f(x_m), z_m)`` over every logit;
- **DER++ replay**: ``β·CE(f(x'_m)[past], y'_m)`` over the past classes;
- **past update** (the "future-past" logit update): for the replayed samples, the stored logits of
  every class that is not past (current and future) are replaced by the network's present logits
  ``h``, rescaled so that the ground-truth stored logit ``z[y]`` stays the largest:
  ``h ← h · γ·z[y] / max(h)`` when ``max(h) > z[y]`` (:func:`transplant`). A sample replayed for the
  k-th time in a chunk is updated with probability ``1/k``, so its final stored value is a uniform
  draw over its replays. At each boundary every stored sample is updated this way by the
  chunk-final network, and the chunk's own samples join the memory with their logits, whose past
  classes are rescaled below their ground truth the same way;
- **future preparation**: a supervised contrastive (SupCon, Khosla et al. 2020) loss
  ``λ·SupCon`` on the L2-normalised *future* logits of ``n_views`` random views of the incoming
  batch and ``supcon_batch`` memory samples, temperature ``temperature``, so that the logits of
  not-yet-seen classes already carry features of the data;
- **future constraint**: ``η·mean(relu(max f[future] + m − max f[own head]))``, over the incoming
  batch (own head: the current classes) and the replayed samples (own head: the classes of the
  chunk they were stored in), kept where positive: a future logit may not come within margin ``m``
  of the sample's own head. The optional **past constraint** (``past_constraint = True``; off by
  default, as in the authors' code) does the same for the incoming batch between the softmax of the
  past classes (detached) and of the current ones.

The memory is balanced and filled at the boundaries (the paper's buffer): at the end of a chunk
each (chunk, class) group already stored is cut to ``mem_size // n_groups`` samples (``n_groups``:
the groups seen so far; in class-IL, the classes seen) and the chunk's classes share the free slots.
So nothing is replayed during the first chunk.

Defaults are the authors' best hyper-parameters for Seq-CIFAR-10 with a buffer of 500 (mammoth
``utils/best_args.py``): ``α = 0.3, β = 0.8, γ = 0.85, λ = 0.05, η = 0.001, m = 0.7``, temperature 5,
64 memory samples and 2 views for SupCon. lr, batch and replay batch come from the run.

Settings: class-incremental (the paper's) and task-incremental (the declared task mask also applies
to every cross-entropy). It needs chunk boundaries: the memory is written and the stored logits are
brought up to date at each ``end_chunk``. Domain-incremental streams run, but after the first chunk
no class is new, so the past update, SupCon and the future constraint have nothing to act on and the
method is DER++ with a balanced memory written at the boundaries. With one class per chunk the
stream loss is zero (a softmax over one logit): a chunk's class is learned only once its samples
are in the memory, so the learning accuracy stays near chance there.

Deviations
----------
- Heads: the paper's network has one head (block of logits) per task, and the classes of a task are
  known in advance. Here the head is flat: *current* is the set of classes seen in this chunk so
  far (the incoming batch's included), *past* those of earlier chunks and *future* every class not
  yet seen. The future logits form **one** future head for SupCon and the constraint (the paper has
  one per future task).
- SupCon views: the paper uses strong image augmentations. With ``augment`` set (``crop_flip``) the
  views are the learner's augmentations; otherwise (flat MLP inputs) each view zeroes every input
  feature with probability ``view_drop`` (0.2), drawn from the augmentation generator.
- The rescaling ``h · γ·z[y]/max(h)`` only keeps ``z[y]`` the largest when ``z[y] > 0`` (for a
  negative ground-truth logit the ratio flips signs; the authors' code applies it anyway). When
  ``z[y] ≤ 0`` the new logits are shifted instead, ``h − max(h) + z[y] − (1 − γ)·(max(h) − z[y])``,
  so their largest lies below ``z[y]`` there too.
- The chunk's samples that join the memory at its end are a reservoir sample of the chunk
  (``2·mem_size`` samples kept while it runs), taken in slot order per class; their logits are the
  chunk-final network's in evaluation mode (the authors' run the training-mode network without
  updating BatchNorm statistics; the MLPs here have none).
- No BatchNorm alignment (``align_bn``) and no distance-preserving term (``dp_weight = 0``, the
  authors' default): the MLPs have no BatchNorm.
- The replay batch size defaults to the incoming batch size (as DER++ here); the two replay batches
  are drawn independently and a sample drawn in both is updated once (from the first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data import Batch
from lifelong.learn.base import Learner, StepStats
from lifelong.learn.memory import ReservoirMemory, TensorMemory
from lifelong.seeding import derive_seed


def transplant(stored: Tensor, new: Tensor, y: Tensor, cols: Tensor, gamma: float) -> Tensor:
    """Stored logits ``stored`` (N, C) with columns ``cols`` (C,) bool replaced by ``new`` (N, C)'s,
    rescaled so that the ground-truth stored logit ``stored[i, y_i]`` stays above them.

    Where ``m = max(new[i, cols]) > g = stored[i, y_i]``: the new values are multiplied by
    ``γ·g/m`` (the paper's rule) when ``g > 0``, and shifted by ``g − m − (1−γ)(m − g)`` when
    ``g ≤ 0``. Elsewhere they are copied as they are. The ground-truth column is never changed when
    it is not in ``cols``. Returns a new tensor.

    Examples
    --------
    >>> z = torch.tensor([[4.0, 1.0, 0.0]])
    >>> h = torch.tensor([[9.0, 2.0, 8.0]])
    >>> transplant(z, h, torch.tensor([0]), torch.tensor([False, True, True]), 0.5)  # 2·(0.5·4/8), 8·(0.5·4/8)
    tensor([[4.0000, 0.5000, 2.0000]])
    """
    out = stored.clone()
    if not bool(cols.any()):
        return out
    h = new[:, cols].to(stored.dtype)  # (N, k)
    g = stored.gather(1, y[:, None])  # (N, 1) ground-truth stored logits
    m = h.max(1, keepdim=True).values  # (N, 1)
    over = m > g
    positive = g > 0
    scaled = h * (gamma * g / m.where(over & positive, torch.ones_like(m)))
    shifted = h + (g - m - (1.0 - gamma) * (m - g))
    h = torch.where(over & positive, scaled, torch.where(over, shifted, h))
    out[:, cols] = h
    return out


def supcon(features: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, ``L_out``) of ``features`` (N, V, D),
    L2-normalised, with ``labels`` (N,): every one of the N·V views is an anchor, its positives are
    the other views with its label; the loss is averaged over each sample's views and over samples.
    """
    n, v, _ = features.shape
    flat = features.transpose(0, 1).reshape(n * v, -1)  # (V·N, D): view-major, as SupCon's reference
    lab = labels.repeat(v)  # (V·N,)
    sim = flat @ flat.T / temperature  # (V·N, V·N)
    self_mask = torch.eye(n * v, dtype=torch.bool, device=features.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (lab[:, None] == lab[None, :]) & ~self_mask  # every anchor has >= 1 positive when V >= 2
    mean_pos = (log_prob.masked_fill(~pos, 0.0)).sum(1) / pos.sum(1).clamp(min=1)
    return -mean_pos.mean()


class BoundaryMemory(TensorMemory):
    """A balanced memory written at chunk boundaries: slots ``0 .. size-1`` filled, each sample with
    its fields (stored logits, the mask of its chunk's classes, the index of that chunk)."""

    def reduce(self, m: int, key: Tensor) -> None:
        """Keep the first ``m`` stored samples of every group, in slot order; ``key`` (size,) int64
        names each filled slot's group."""
        if self.size == 0:
            return
        rank = F.one_hot(key).cumsum(0).gather(1, key[:, None]).squeeze(1) - 1  # position within its group
        kept = self.get((rank < m).nonzero().flatten())  # advanced indexing copies the rows
        k = len(kept)
        self._write(torch.arange(k), torch.arange(k), kept, kept.extras)
        self.size = k

    def append(self, batch: Batch, **fields: Tensor) -> None:
        """Write ``batch`` (with ``fields``) into the next free slots; it must fit."""
        n = len(batch)
        if n == 0:
            return
        if self.size + n > self.capacity:
            raise ValueError(f"memory overflow: {self.size} + {n} > {self.capacity}")
        self._allocate(batch, fields)
        self._write(torch.arange(self.size, self.size + n), torch.arange(n), batch, fields)
        self.size += n
        self.n_seen += n


class XDER(Learner):
    """Memory: balanced, written at boundaries, of (x, y, logits, head, chunk). Own update rule."""

    name = "xder"
    description = "X-DER: DER++ whose stored logits are updated for later classes, with SupCon on future logits"
    paper = "Boschini et al. 2022, Class-Incremental Continual Learning into the eXtended DER-verse (TPAMI)"
    needs_boundaries = True  # the memory is filled and its logits updated at each boundary
    composable = False  # stream CE over the current classes, two replays, a logit update, SupCon, a constraint
    augments = True

    def __init__(self, model: nn.Module, *, mem_size: int = 500, alpha: float = 0.3, beta: float = 0.8,
                 gamma: float = 0.85, lambd: float = 0.05, eta: float = 0.001, margin: float = 0.7,
                 temperature: float = 5.0, supcon_batch: int = 64, n_views: int = 2, view_drop: float = 0.2,
                 past_constraint: bool = False, replay_batch: int | None = None, **base) -> None:
        super().__init__(model, **base)
        self.mem_size, self.alpha, self.beta, self.gamma = mem_size, alpha, beta, gamma
        self.lambd, self.eta, self.margin, self.temperature = lambd, eta, margin, temperature
        self.supcon_batch, self.n_views, self.view_drop = supcon_batch, n_views, view_drop
        self.past_constraint, self.replay_batch = past_constraint, replay_batch
        self.memory = BoundaryMemory(mem_size, seed=derive_seed(self.seed, "memory"), device=self.device)
        # a reservoir sample of the current chunk: the candidates that join the memory at its end
        self.chunk = ReservoirMemory(2 * mem_size, seed=derive_seed(self.seed, "chunk"), device=self.device)
        self.past = torch.zeros(self.n_classes, dtype=torch.bool, device=self.device)  # classes of earlier chunks
        self.chunk_classes = torch.zeros(self.n_classes, dtype=torch.bool, device=self.device)  # seen this chunk
        self.update_count = torch.zeros(mem_size, device=self.device)  # replays of each slot this chunk
        self.n_chunks = 0  # boundaries passed
        self.n_groups = 0  # (chunk, class) groups seen at those boundaries

    # -- pieces of the step ------------------------------------------------------------------------
    def current(self, batch: Batch) -> Tensor:
        """(C,) bool: the classes seen in this chunk so far, the batch's included (a class of an
        earlier chunk that comes back is both past and current)."""
        cur = self.chunk_classes.clone()
        cur[batch.y] = True
        return cur

    def views(self, x: Tensor) -> Tensor:
        """``n_views`` random views of ``x`` (N, ...), as (N·V, ...) with a sample's views adjacent."""
        rep = x.repeat_interleave(self.n_views, 0)
        if self.augmenter is not None:
            return self.augmented(rep)
        keep = torch.rand(rep.shape, generator=self.aug_generator) >= self.view_drop
        return rep * keep.to(rep.device, rep.dtype)

    def past_update(self, idx: Tensor, out: Tensor, y: Tensor) -> None:
        """Update the stored logits of slots ``idx`` (distinct) from the present logits ``out``: the
        k-th replay of a slot in this chunk is taken with probability 1/k."""
        cols = ~self.past
        if not bool(cols.any()) or not len(idx):
            return
        self.update_count[idx] += 1
        u = torch.rand(len(idx), generator=self.generator).to(self.device)
        take = u * self.update_count[idx] < 1
        if not bool(take.any()):
            return
        idx, out, y = idx[take], out[take], y[take]
        stored = self.memory.fields["logits"][idx]
        self.memory.update_field("logits", idx, transplant(stored, out, y, cols, self.gamma))

    def constraint(self, bad: Tensor, good: Tensor) -> Tensor | None:
        """``η·mean`` of the positive ``bad + margin − good`` (both (N,)), None when none is."""
        gap = bad + self.margin - good
        pos = gap > 0
        return self.eta * gap[pos].mean() if bool(pos.any()) else None

    # -- the protocol ------------------------------------------------------------------------------
    def observe(self, batch: Batch) -> StepStats:
        self.check_batch(batch)
        self.train_mode()
        cur = self.current(batch)
        future = ~(self.past | cur)
        # every batch of the step is drawn first: the incoming one, the two replay batches (slot
        # indices idx1, idx2, each distinct) and, while classes remain unseen, the SupCon views
        inputs = [self.augmented(batch.x)]
        m1 = m2 = None
        if len(self.memory):
            n = self.replay_batch or len(batch)
            idx1 = torch.randperm(len(self.memory), generator=self.generator)[:n].to(self.device)
            idx2 = torch.randperm(len(self.memory), generator=self.generator)[:n].to(self.device)
            m1, m2 = self.memory.get(idx1), self.memory.get(idx2)
            inputs += [self.augmented(m1.x), self.augmented(m2.x)]
        scl_y = None
        if bool(future.any()):
            xs, scl_y = batch.x, batch.y
            if len(self.memory):
                sc = self.memory.sample(self.supcon_batch, self.generator)
                xs, scl_y = torch.cat([sc.x, xs]), torch.cat([sc.y, scl_y])
            inputs.append(self.views(xs))  # (N·V, ...)
        if self.fused_forward:  # no batch statistics: one call, split (the same logits)
            outs = list(self.model(torch.cat(inputs)).split([len(x) for x in inputs]))
        else:
            outs = [self.model(x) for x in inputs]
        logits = outs[0]  # (B, C)
        stream = self.ce(logits.masked_fill(~cur, float("-inf")), batch.y, batch.task)
        loss = stream
        buf_out: Tensor | None = None  # the replayed samples' logits (R, C), with grad
        buf_head: Tensor | None = None  # (R, C) bool: their own chunk's classes
        if m1 is not None and m2 is not None:
            out1, out2 = outs[1], outs[2]
            loss = loss + self.alpha * F.mse_loss(out1, m1.extras["logits"])
            if bool(self.past.any()):
                loss = loss + self.beta * self.ce(out2.masked_fill(~self.past, float("-inf")), m2.y, m2.task)
            # the two replay batches joined, a slot drawn in both kept once (its first draw)
            first = torch.cat([torch.ones_like(idx1, dtype=torch.bool), ~torch.isin(idx2, idx1)])
            buf_out = torch.cat([out1, out2])[first]
            buf_head = torch.cat([m1.extras["head"], m2.extras["head"]])[first]
            with torch.no_grad():
                self.past_update(torch.cat([idx1, idx2])[first], buf_out.detach(), torch.cat([m1.y, m2.y])[first])
        if scl_y is not None:
            # future preparation: SupCon on the L2-normalised future logits of the views
            feats = F.normalize(outs[-1][:, future], dim=1).reshape(len(scl_y), self.n_views, -1)
            loss = loss + self.lambd * supcon(feats, scl_y, self.temperature)
            # future constraint: no future logit within `margin` of the sample's own head
            bad, good = logits[:, future].max(1).values, logits[:, cur].max(1).values
            if buf_out is not None and buf_head is not None:
                bad = torch.cat([bad, buf_out[:, future].max(1).values])
                good = torch.cat([good, buf_out.masked_fill(~buf_head, float("-inf")).max(1).values])
            c = self.constraint(bad, good)
            if c is not None:
                loss = loss + c
        if self.past_constraint and bool((self.past & ~cur).any()):
            p = F.softmax(logits.masked_fill(~(self.past | cur), float("-inf")), 1)
            c = self.constraint(p[:, self.past & ~cur].max(1).values.detach(), p[:, cur].max(1).values)
            if c is not None:
                loss = loss + c
        self.step(loss)
        self.chunk.add(batch)
        self.chunk_classes[batch.y] = True
        self.record_seen(batch)
        return self.stats(logits, batch, stream)

    @torch.no_grad()
    def logits_of(self, x: Tensor) -> Tensor:
        """The network's logits on ``x`` in evaluation mode, in slices of 256."""
        was_training = self.model.training
        self.model.eval()
        out = torch.cat([self.model(x[i:i + 256]) for i in range(0, len(x), 256)]) if len(x) else \
            torch.zeros(0, self.n_classes, device=self.device)
        self.model.train(was_training)
        return out

    @torch.no_grad()
    def end_chunk(self) -> None:
        cur = self.chunk_classes.clone()
        classes = cur.nonzero().flatten().tolist()
        # the memory is balanced over (chunk, class) groups, as the authors' over (task, class)
        self.n_groups += len(classes)
        if self.n_groups and len(self.memory):
            key = self.memory.fields["chunk"][: len(self.memory)] * self.n_classes + self.memory.y[: len(self.memory)]
            self.memory.reduce(self.mem_size // self.n_groups, key)  # old groups cut to their new quota
        n_old = len(self.memory)
        if len(self.chunk) and classes:
            # the free slots shared among the chunk's classes, the remainder to random ones
            free = self.mem_size - n_old
            quota = torch.full((self.n_classes,), 0, dtype=torch.int64)
            quota[classes] = free // len(classes)
            extra = torch.randperm(len(classes), generator=self.generator)[: free - (free // len(classes)) * len(classes)]
            quota[torch.tensor(classes, dtype=torch.int64)[extra]] += 1
            cand = self.chunk.all()
            rank = F.one_hot(cand.y, self.n_classes).cumsum(0).gather(1, cand.y[:, None]).squeeze(1) - 1
            pick = (rank < quota.to(self.device)[cand.y]).nonzero().flatten()
            new = Batch(cand.x[pick], cand.y[pick], None if cand.task is None else cand.task[pick])
            z = self.logits_of(new.x)
            z = transplant(z, z, new.y, self.past & ~cur, self.gamma)  # past logits rescaled below the label's
            head = cur.expand(len(new), -1).clone()
            chunk = torch.full((len(new),), self.n_chunks, dtype=torch.int64, device=self.device)
            self.memory.append(new, logits=z, head=head, chunk=chunk)
        if n_old and bool((~self.past).any()):
            # every older sample's logits for the classes it did not know, from the chunk-final network
            idx = torch.arange(n_old, device=self.device)
            old = self.memory.get(idx)
            z = transplant(old.extras["logits"], self.logits_of(old.x), old.y, ~self.past, self.gamma)
            self.memory.update_field("logits", idx, z)
        self.past = self.seen_classes.clone()
        self.n_chunks += 1
        self.update_count.zero_()
        self.chunk_classes.zero_()
        self.chunk.size, self.chunk.n_seen = 0, 0  # the next chunk's reservoir (its generator runs on)

    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "chunk": self.chunk.state_dict(), "past": self.past.clone(),
                "chunk_classes": self.chunk_classes.clone(), "update_count": self.update_count.clone(),
                "n_chunks": self.n_chunks, "n_groups": self.n_groups}

    def load_extra_state(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.chunk.load_state_dict(state["chunk"])
        self.past = state["past"].to(self.device, copy=True)
        self.chunk_classes = state["chunk_classes"].to(self.device, copy=True)
        self.update_count = state["update_count"].to(self.device, copy=True)
        self.n_chunks, self.n_groups = int(state["n_chunks"]), int(state["n_groups"])
