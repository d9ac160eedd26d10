"""Tensor-native episodic memories.

Every memory preallocates its storage on the first :meth:`add` (it then knows the input shape and
the shapes of any extra fields) and never holds Python lists of samples. Insertion decisions use
the memory's own ``torch.Generator``; sampling takes the caller's generator. No global random
state is touched.

Examples
--------
>>> import torch
>>> from lifelong.data import Batch
>>> mem = ReservoirMemory(capacity=4, seed=0)
>>> mem.add(Batch(torch.randn(10, 3), torch.arange(10)), logits=torch.zeros(10, 5))
>>> len(mem), mem.n_seen
(4, 10)
>>> b = mem.sample(2, torch.Generator().manual_seed(0))
>>> b.x.shape, b.extras["logits"].shape
(torch.Size([2, 3]), torch.Size([2, 5]))
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lifelong.data import Batch
from lifelong.errors import ConfigError, DataError


@runtime_checkable
class Memory(Protocol):
    def add(self, batch: Batch, **fields: Tensor) -> None: ...
    def sample(self, n: int, generator: torch.Generator) -> Batch: ...
    def __len__(self) -> int: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class TensorMemory:
    """Fixed-capacity tensor storage shared by the concrete memories.

    Slots ``0 .. size-1`` are filled. Subclasses decide which slots incoming samples take.
    """

    def __init__(self, capacity: int, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if capacity < 0:
            raise ConfigError(f"memory capacity must be >= 0, got {capacity}")
        #: where the stored tensors live (the learner's device); the generator stays on the CPU
        self.device = torch.device(device)
        self.capacity = int(capacity)
        self.size = 0
        self.n_seen = 0
        self.generator = torch.Generator().manual_seed(int(seed))
        self.x: Tensor | None = None  # (capacity, *input_shape)
        self.y = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
        self.task: Tensor | None = None  # (capacity,) when batches carry task ids
        self.fields: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return self.size

    def _allocate(self, batch: Batch, fields: dict[str, Tensor]) -> None:
        if self.x is None:
            self.x = torch.zeros((self.capacity, *batch.x.shape[1:]), dtype=batch.x.dtype, device=self.device)
            if batch.task is not None:
                self.task = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
            for k, v in fields.items():
                self.fields[k] = torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
            return
        if batch.x.shape[1:] != self.x.shape[1:]:
            raise DataError(
                f"memory holds inputs of shape {tuple(self.x.shape[1:])}, got {tuple(batch.x.shape[1:])}"
            )
        if set(fields) != set(self.fields):
            raise DataError(f"memory stores fields {sorted(self.fields)}, got {sorted(fields)}")

    def _write(self, slots: Tensor, rows: Tensor, batch: Batch, fields: dict[str, Tensor]) -> None:
        """Copy ``batch[rows]`` into ``slots`` (both 1-D int64, equal length, slots unique)."""
        assert self.x is not None
        slots = slots.to(self.device)  # no-op on the CPU; the slots were decided on the host
        rows = rows.to(batch.x.device)
        self.x[slots] = batch.x[rows].detach().to(self.device)
        self.y[slots] = batch.y[rows].to(self.device)
        if self.task is not None and batch.task is not None:
            self.task[slots] = batch.task[rows].to(self.device)
        for k, v in fields.items():
            self.fields[k][slots] = v[rows].detach().to(self.device)

    def get(self, idx: Tensor) -> Batch:
        """The stored samples at slot indices ``idx`` as a :class:`Batch`."""
        assert self.x is not None
        idx = idx.to(self.device)
        task = self.task[idx] if self.task is not None else None
        return Batch(self.x[idx], self.y[idx], task, {k: v[idx] for k, v in self.fields.items()})

    def all(self) -> Batch:
        """Every stored sample, in slot order."""
        return self.get(torch.arange(self.size, device=self.device))

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        """``min(n, len(self))`` distinct stored samples, uniformly at random."""
        if self.size == 0:
            raise DataError("cannot sample from an empty memory")
        idx = torch.randperm(self.size, generator=generator)[: min(n, self.size)]
        return self.get(idx)

    def update_field(self, name: str, idx: Tensor, values: Tensor) -> None:
        self.fields[name][idx.to(self.device)] = values.detach().to(self.device)

    def state_dict(self) -> dict:
        return {
            "capacity": self.capacity,
            "size": self.size,
            "n_seen": self.n_seen,
            "generator": self.generator.get_state(),
            "x": self.x,
            "y": self.y,
            "task": self.task,
            "fields": dict(self.fields),
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise DataError(f"memory state has capacity {state['capacity']}, this memory has {self.capacity}")
        self.size = int(state["size"])
        self.n_seen = int(state["n_seen"])
        self.generator.set_state(state["generator"].cpu())
        move = lambda t: None if t is None else t.to(self.device)  # noqa: E731 - a checkpoint may be loaded on the CPU
        self.x, self.y, self.task = move(state["x"]), move(state["y"]), move(state["task"])
        self.fields = {k: move(v) for k, v in state["fields"].items()}


class ReservoirMemory(TensorMemory):
    """Reservoir sampling (Vitter 1985): after ``n`` samples every one of them is stored with
    probability ``capacity / n``. One generator call per batch draws every sample's uniform; within
    a batch, when two samples draw the same slot the later one wins, exactly as the sequential
    algorithm would, and the kept rows are written in one indexed copy.
    """

    def add(self, batch: Batch, **fields: Tensor) -> None:
        b = len(batch)
        if self.capacity == 0 or b == 0:
            self.n_seen += b
            return
        self._allocate(batch, fields)
        # t: how many samples preceded each incoming one; sample i is kept at slot t if the memory
        # is still filling, else at a uniform slot in [0, t] if that slot is < capacity. The b
        # uniforms are one draw of the generator; the slot arithmetic is the same double-precision
        # product and truncation in Python as in torch, without a dozen tiny tensor ops per step.
        u = torch.rand(b, generator=self.generator, dtype=torch.float64).tolist()
        last: dict[int, int] = {}  # slot -> the last row that drew it (later writes win)
        for i, ui in enumerate(u):
            t = self.n_seen + i
            slot = t if t < self.capacity else min(int(ui * (t + 1)), t)
            if slot < self.capacity:
                last[slot] = i
        if last:
            order = sorted(last.items(), key=lambda kv: kv[1])  # in row order, as before
            slots = torch.tensor([k for k, _ in order], dtype=torch.int64)
            rows = torch.tensor([v for _, v in order], dtype=torch.int64)
            self._write(slots, rows, batch, fields)
        self.n_seen += b
        self.size = min(self.capacity, self.n_seen)


class ClassBalancedMemory(TensorMemory):
    """A greedy class-balanced memory (GDumb, Prabhu et al. 2020).

    A sample is stored while its class holds fewer than ``capacity / n_classes_seen`` slots. When
    the memory is full, room is made by evicting a random sample of the largest class.
    """

    def __init__(self, capacity: int, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(capacity, seed=seed, device=device)
        self.class_count: dict[int, int] = {}

    def add(self, batch: Batch, **fields: Tensor) -> None:
        if self.capacity == 0 or len(batch) == 0:
            self.n_seen += len(batch)
            return
        self._allocate(batch, fields)
        for i, label in enumerate(batch.y.tolist()):  # sequential by definition; B is small
            self.n_seen += 1
            self.class_count.setdefault(label, 0)
            quota = self.capacity / len(self.class_count)
            if self.class_count[label] >= quota:
                continue
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                largest = max(self.class_count, key=lambda c: (self.class_count[c], -c))
                members = (self.y[: self.size] == largest).nonzero().flatten()
                slot = int(members[torch.randint(len(members), (1,), generator=self.generator)])
                self.class_count[largest] -= 1
            self._write(torch.tensor([slot]), torch.tensor([i]), batch, fields)
            self.class_count[label] += 1

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["class_count"] = torch.tensor(sorted(self.class_count.items()), dtype=torch.int64).reshape(-1, 2)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.class_count = {int(c): int(n) for c, n in state["class_count"].tolist()}


def input_cosine(candidates: Batch, subset: Batch) -> Tensor:
    """(B,) the largest cosine similarity of each candidate's flattened input to the subset's
    inputs: the default score of :class:`GradientScoredMemory` when no gradient scorer is set."""
    a = torch.nn.functional.normalize(candidates.x.reshape(len(candidates), -1).float(), dim=1)
    b = torch.nn.functional.normalize(subset.x.reshape(len(subset), -1).float().to(a.device), dim=1)
    return (a @ b.T).max(1).values


class GradientScoredMemory(TensorMemory):
    """Gradient-based sample selection, greedy variant (GSS-greedy; Aljundi et al., NeurIPS 2019).

    Each stored sample keeps a score ``c = 1 + max_j cos(g, g_j)``: its gradient's largest cosine
    similarity to the gradients ``g_j`` of ``subset`` buffer samples drawn at random when it was
    offered (``c`` in [0, 2]; low means unlike the buffer). While the memory fills, every
    candidate is stored with its score. Once full, a candidate with ``c < 1`` (no buffer gradient
    points its way) picks a stored sample ``i`` with probability ``C_i / Σ C`` and replaces it with
    probability ``C_i / (C_i + c)``; a candidate with ``c >= 1`` is not stored.

    ``scorer(candidates, subset) -> (B,)`` gives the max cosine similarities; the GSS learner sets
    it to the cosine of per-sample loss gradients. Without one, the flattened inputs' cosine
    (:func:`input_cosine`) stands in. The subset and every admission draw come from the memory's
    own generator; one subset serves a whole incoming batch. The first sample, offered to an empty
    memory, has nothing to compare with and gets ``first_score`` (0.1, as in the Mammoth
    implementation).
    """

    def __init__(self, capacity: int, *, seed: int = 0, device: str | torch.device = "cpu", subset: int = 10,
                 first_score: float = 0.1) -> None:
        super().__init__(capacity, seed=seed, device=device)
        if subset < 1:
            raise ConfigError(f"the gradient-scored memory's subset must be >= 1, got {subset}")
        self.subset, self.first_score = int(subset), float(first_score)
        self.scores = torch.zeros(self.capacity, dtype=torch.float64)  # (capacity,) C_i, on the host
        self.scorer = input_cosine

    def candidate_scores(self, batch: Batch) -> Tensor:
        """(B,) float64 ``1 + max cos`` of each candidate against a random buffer subset (drawn
        from the memory's generator), or ``first_score`` when the memory is empty."""
        if self.size == 0:
            return torch.full((len(batch),), self.first_score, dtype=torch.float64)
        idx = torch.randperm(self.size, generator=self.generator)[: min(self.subset, self.size)]
        sims = self.scorer(batch, self.get(idx))
        return sims.detach().to("cpu", torch.float64).clamp(-1.0, 1.0) + 1.0

    def add(self, batch: Batch, **fields: Tensor) -> None:
        b = len(batch)
        if self.capacity == 0 or b == 0:
            self.n_seen += b
            return
        self._allocate(batch, fields)
        c = self.candidate_scores(batch).tolist()
        u = torch.rand(b, 2, generator=self.generator, dtype=torch.float64).tolist()  # (pick, accept) per row
        for i, ci in enumerate(c):  # sequential by definition: each admission changes the scores
            self.n_seen += 1
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            elif ci < 1.0:
                stored = self.scores[: self.size]
                total = float(stored.sum())
                if total > 0:
                    cum = torch.cumsum(stored, 0)
                    slot = min(int(torch.searchsorted(cum, u[i][0] * total, right=True)), self.size - 1)
                else:
                    slot = min(int(u[i][0] * self.size), self.size - 1)
                ck = float(stored[slot])
                if not u[i][1] < (ck / (ck + ci) if ck + ci > 0 else 0.5):
                    continue
            else:
                continue
            self._write(torch.tensor([slot]), torch.tensor([i]), batch, fields)
            self.scores[slot] = ci

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["scores"] = self.scores.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.scores = state["scores"].to("cpu", torch.float64, copy=True)


MEMORIES = {"reservoir": ReservoirMemory, "class_balanced": ClassBalancedMemory, "gradient_scored": GradientScoredMemory}
