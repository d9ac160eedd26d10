"""Scenarios: functions that cut a :class:`~lifelong.data.Dataset` into a stream of chunks plus the
evaluation sets that make the accuracy matrix, and :data:`SCENARIOS`, the registry
:func:`build_stream` looks names up in.

The base splits (class-, task- and domain-incremental, and :class:`Stream`) live in
:mod:`lifelong.data.splits` and the L2M lifetimes, built on them, in :mod:`lifelong.data.lifetimes`;
this module adds the online, blurry and drifting streams and registers all of them. Imports point
one way: splits <- lifetimes <- scenarios. Options are checked against each builder's signature
(:mod:`lifelong.options`) before anything is built.

Each is deterministic given its seed and refuses a bad request with a message that says what to
change.

Examples
--------
>>> import torch
>>> from lifelong.data import Dataset
>>> g = torch.Generator().manual_seed(0)
>>> ds = Dataset("toy", torch.rand(60, 4, generator=g), torch.arange(60) % 6,
...              torch.rand(30, 4, generator=g), torch.arange(30) % 6)
>>> s = class_incremental(ds, n_chunks=3)
>>> [c.classes for c in s.chunks]
[(0, 1), (2, 3), (4, 5)]
>>> class_incremental(ds, n_chunks=4)
Traceback (most recent call last):
...
lifelong.errors.ConfigError: class_incremental: 6 classes do not split into 4 equal chunks; choose n_chunks from [1, 2, 3, 6] or set classes_per_chunk
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lifelong.data import Chunk, Dataset, EvalSet
from lifelong.data import lifetimes
from lifelong.data.datasets.core50 import TRAIN_SESSIONS, SessionDataset
from lifelong.data.splits import (
    Stream, _class_order, _subsample, class_incremental, domain_incremental, rotate, task_incremental,
)
from lifelong.errors import ConfigError
from lifelong.options import check_options
from lifelong.registry import Registry
from lifelong.seeding import derive_seed

__all__ = ["SCENARIOS", "ScenarioInfo", "Stream", "blurry", "build_stream", "class_incremental", "concept_drift",
           "domain_incremental", "hide_labels", "label_permuted", "online", "river_drift", "rotate", "split_cifar10",
           "split_cifar100", "split_tinyimagenet", "task_incremental", "core50_ni", "core50_nc"]


# --------------------------------------------------------------------------------------------
# Online, blurry and drifting streams. Their boundaries are hidden from the learner by default
# (``task_free``); the loop still evaluates at them, which gives the accuracy matrix.


def online(
    ds: Dataset, *, n_chunks: int = 5, split: str = "class", classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", seed: int = 0,
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
) -> Stream:
    """The online, task-free setting: a class-incremental split (or ``split="domain"``) whose chunk
    boundaries are never announced to the learner (``end_chunk`` is not called).

    One pass and small batches (10 in the literature) are set by the run config (``epochs = 1``,
    ``batch_size = 10``).
    """
    if split == "class":
        base = class_incremental(ds, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order,
                                 seed=seed, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)
    elif split == "domain":
        base = domain_incremental(ds, n_chunks=n_chunks, seed=seed, train_per_chunk=train_per_chunk,
                                  test_per_chunk=test_per_chunk)
    else:
        raise ConfigError(f"online: split must be 'class' or 'domain' (a task-free stream has no task ids), got {split!r}")
    return replace(base, name="online", task_free=True, info={**base.info, "split": split})


def blurry(
    ds: Dataset, *, n_chunks: int = 5, disjoint_ratio: float = 0.5, blurry_ratio: float = 0.1, seed: int = 0,
    train_per_class: int | None = None, test_per_class: int | None = None, task_free: bool = True,
) -> Stream:
    """Stochastic blurry boundaries (Si-Blurry; Moon et al., ICCV 2023).

    The classes, in a seeded random order, are cut at random points into ``n_chunks`` groups of
    random sizes (at least one class each): each class's *home* chunk. A random ``disjoint_ratio``
    of the classes are disjoint: all their samples stay at home. The others are blurry: a fraction
    ``blurry_ratio`` of their training samples is moved to other chunks chosen uniformly at random,
    so consecutive chunks share classes and chunk lengths vary. Evaluation set ``j`` holds the test
    samples of chunk ``j``'s home classes.
    """
    n = ds.n_classes
    if not 1 <= n_chunks <= n:
        raise ConfigError(f"blurry: n_chunks must lie in [1, {n}] (each chunk needs a home class), got {n_chunks}")
    for key, value in (("disjoint_ratio", disjoint_ratio), ("blurry_ratio", blurry_ratio)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"blurry: {key} must lie in [0, 1], got {value}")
    g = torch.Generator().manual_seed(derive_seed(seed, "blurry"))
    order = torch.randperm(n, generator=g).tolist()
    cuts = sorted((torch.randperm(n - 1, generator=g)[: n_chunks - 1] + 1).tolist())
    homes = [order[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    home_of = {c: i for i, cs in enumerate(homes) for c in cs}
    n_blurry = round((1.0 - disjoint_ratio) * n)
    blurry_classes = sorted(torch.randperm(n, generator=g)[:n_blurry].tolist())
    assigned: list[list[Tensor]] = [[] for _ in range(n_chunks)]
    for c in range(n):
        idx = _subsample((ds.y_train == c).nonzero().flatten(), train_per_class, seed, f"blurry-train/{c}")
        idx = idx[torch.randperm(len(idx), generator=g)]
        home = home_of[c]
        k = round(blurry_ratio * len(idx)) if (c in blurry_classes and n_chunks > 1) else 0
        moved, stay = idx[:k], idx[k:]
        assigned[home].append(stay)
        other = torch.randint(n_chunks - 1, (k,), generator=g) if k else torch.zeros(0, dtype=torch.int64)
        other = other + (other >= home).long()  # uniform over the chunks other than home
        for j in range(n_chunks):
            assigned[j].append(moved[other == j])
    chunks, evals = [], []
    for i in range(n_chunks):
        tr = torch.cat(assigned[i]).sort().values
        cls = torch.tensor(sorted(homes[i]))
        te = torch.cat([_subsample((ds.y_test == c).nonzero().flatten(), test_per_class, seed, f"blurry-test/{c}")
                        for c in cls.tolist()]).sort().values
        if len(tr) == 0 or len(te) == 0:
            raise ConfigError(f"blurry: chunk {i} (home classes {cls.tolist()}) has no training or no test samples in {ds.name}")
        name = f"task{i}_" + "-".join(map(str, cls.tolist()))
        present = tuple(sorted(ds.y_train[tr].unique().tolist()))
        chunks.append(Chunk(i, ds.train_inputs(tr), ds.y_train[tr], present, None, name))
        evals.append(EvalSet(i, ds.test_inputs(te), ds.y_test[te], tuple(cls.tolist()), None, name))
    return Stream(
        "blurry", chunks, evals, ds.n_classes, ds.input_shape, task_free=task_free,
        info={"home_classes": [sorted(h) for h in homes], "blurry_classes": blurry_classes,
              "disjoint_ratio": disjoint_ratio, "blurry_ratio": blurry_ratio, "dataset": ds.name},
    )


def concept_drift(
    ds: Dataset, *, n_chunks: int = 8, n_concepts: int = 3, seed: int = 0,
    n_train: int | None = None, test_per_concept: int | None = None, task_free: bool = True,
) -> Stream:
    """Real concept drift by relabelling: the inputs keep their distribution, the labels change.

    Concept 0 is the dataset's own labelling; concepts ``1..n_concepts-1`` relabel every class by a
    seeded random permutation (distinct from the others). The training data (all of it, or a
    seeded ``n_train`` samples) are cut at random points into ``n_chunks`` segments of random
    lengths (between about a third and three times each other). The first ``n_concepts`` segments
    visit the concepts in order; each later one switches to a seeded random concept other than the
    current one, so old mappings recur. There is one evaluation set per concept: the test set under
    that concept's labels.
    """
    n = ds.n_classes
    if n_concepts < 2 or n < 2:
        raise ConfigError(f"concept_drift: needs n_concepts >= 2 and at least 2 classes, got {n_concepts} and {n}")
    if n_concepts > math.factorial(n):
        raise ConfigError(f"concept_drift: {n} classes have only {math.factorial(n)} labellings; lower n_concepts")
    if n_chunks <= n_concepts:
        raise ConfigError(
            f"concept_drift: n_chunks ({n_chunks}) must exceed n_concepts ({n_concepts}) so that an old "
            "concept recurs; raise n_chunks or lower n_concepts"
        )
    g = torch.Generator().manual_seed(derive_seed(seed, "concept-drift"))
    perms = [torch.arange(n)]
    while len(perms) < n_concepts:
        p = torch.randperm(n, generator=g)
        if not any(torch.equal(p, q) for q in perms):
            perms.append(p)
    schedule = list(range(n_concepts))
    while len(schedule) < n_chunks:
        nxt = int(torch.randint(n_concepts - 1, (), generator=g))
        schedule.append(nxt + (nxt >= schedule[-1]))  # any concept but the current one
    pool = torch.randperm(len(ds.y_train), generator=g)
    if n_train is not None:
        if n_train < n_chunks:
            raise ConfigError(f"concept_drift: n_train ({n_train}) must be at least n_chunks ({n_chunks})")
        pool = pool[:n_train]
    weights = 0.5 + torch.rand(n_chunks, generator=g, dtype=torch.float64)  # max/min length ratio <= 3
    ends = (weights.cumsum(0) / weights.sum() * len(pool)).round().long().tolist()
    starts = [0, *ends[:-1]]
    if any(e <= s for s, e in zip(starts, ends, strict=True)):
        raise ConfigError(f"concept_drift: {len(pool)} training samples are too few for {n_chunks} segments")
    te = _subsample(torch.arange(len(ds.y_test)), test_per_concept, seed, "concept-drift-test")
    classes = tuple(range(n))
    chunks = []
    for i, (s, e, c) in enumerate(zip(starts, ends, schedule, strict=True)):
        idx = pool[s:e].sort().values
        chunks.append(Chunk(i, ds.train_inputs(idx), perms[c][ds.y_train[idx]], classes, None, f"concept{c}_0"))
    evals = [EvalSet(c, ds.test_inputs(te), perms[c][ds.y_test[te]], classes, None, f"concept{c}_0") for c in range(n_concepts)]
    return Stream(
        "concept_drift", chunks, evals, n, ds.input_shape, task_free=task_free,
        info={"concepts": schedule, "permutations": [p.tolist() for p in perms], "drift_points": ends[:-1],
              "dataset": ds.name},
    )


def label_permuted(
    ds: Dataset, *, n_chunks: int = 100, seed: int = 0, train_per_chunk: int | None = None,
    test_per_chunk: int | None = None,
) -> Stream:
    """A long stream of label-permuted tasks over the same inputs, for measuring lost plasticity.

    Chunk ``i`` holds a seeded sample of the training set (``train_per_chunk``; all of it by
    default) whose labels are remapped by a seeded permutation ``π_i`` of the classes
    (``y ← π_i(y)``); its eval set is the test set (``test_per_chunk``) under the same ``π_i``.
    Every task is as hard as the first, so a falling accuracy on each new task is lost
    plasticity, not a harder task (the "permuted labels" streams of Kumar et al. 2021 and Lyle et
    al. 2023; Dohare et al. 2024 permute the pixels instead: ``domain_incremental``). The chunks
    overlap in inputs, which makes the old mappings interfere with the new one.

    Examples
    --------
    >>> from lifelong.data.datasets import load_dataset
    >>> s = label_permuted(load_dataset("digits"), n_chunks=3, train_per_chunk=100)
    >>> len(s.chunks), len(s.chunks[0]), s.chunks[0].classes == tuple(range(10))
    (3, 100, True)
    """
    if n_chunks < 1:
        raise ConfigError(f"label_permuted: n_chunks must be >= 1, got {n_chunks}")
    classes = tuple(range(ds.n_classes))
    chunks, evals, perms = [], [], []
    for i in range(n_chunks):
        g = torch.Generator().manual_seed(derive_seed(seed, f"labels/{i}"))
        perm = torch.randperm(ds.n_classes, generator=g)  # (C,): class c is relabelled perm[c]
        tr = _subsample(torch.arange(len(ds.y_train)), train_per_chunk, seed, f"label_train/{i}")
        te = _subsample(torch.arange(len(ds.y_test)), test_per_chunk, seed, f"label_test/{i}")
        name = f"labels{i}_0"
        chunks.append(Chunk(i, ds.train_inputs(tr), perm[ds.y_train[tr]], classes, None, name))
        evals.append(EvalSet(i, ds.test_inputs(te), perm[ds.y_test[te]], classes, None, name))
        perms.append(perm.tolist())
    return Stream("label_permuted", chunks, evals, ds.n_classes, ds.input_shape,
                  info={"permutations": perms, "dataset": ds.name})


def _river_take(stream: object, n: int) -> tuple[Tensor, Tensor]:
    """``n`` samples of a river generator as (x float32 (n, d), y int64 (n,)); features in key order."""
    rows, labels = [], []
    for x, y in stream.take(n):  # type: ignore[attr-defined]
        rows.append([float(x[k]) for k in sorted(x)])
        labels.append(int(y))
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def river_drift(
    ds: Dataset | None = None, *, generator: str = "sea", n_chunks: int = 4, chunk_size: int = 2000,
    test_size: int = 1000, concepts: Sequence[int] | None = None, noise: float = 0.0,
    n_features: int = 10, n_classes: int = 2, n_centroids: int = 50, change_speed: float = 0.0,
    seed: int = 0, task_free: bool = True,
) -> Stream:
    """Synthetic drifting streams from river's generators, as tensors; deterministic by ``seed``.

    Chunk ``i`` draws ``chunk_size`` samples from concept ``concepts[i]``; the chunk boundaries are
    the drift points (abrupt drift), and a concept listed twice recurs.

    - ``generator="sea"``: SEA (Street & Kim 2001), 3 features in [0, 10] (scaled here by 1/10),
      2 classes; a concept is SEA's ``variant`` 0-3 (default ``i % 4``). ``noise`` flips labels in
      training only.
    - ``generator="rbf"``: RandomRBFDrift; a concept is a centroid layout (``seed_model`` derived
      from ``seed`` and the concept id; default concept ``i % 3``); ``change_speed > 0`` adds
      gradual drift within a chunk.

    There is one evaluation set per concept (``test_size`` noise-free samples; for RBF, at the
    concept's initial centroids). The ``ds`` argument is ignored: the data come from river.
    """
    from river.datasets import synth  # imported here: river is only needed for this scenario

    if generator not in ("sea", "rbf"):
        raise ConfigError(f"river_drift: generator must be 'sea' or 'rbf', got {generator!r}")
    if n_chunks < 1 or chunk_size < 1 or test_size < 1:
        raise ConfigError("river_drift: n_chunks, chunk_size and test_size must be >= 1")
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"river_drift: noise must lie in [0, 1], got {noise}")
    if concepts is None:
        concepts = [i % (4 if generator == "sea" else 3) for i in range(n_chunks)]
    concepts = [int(c) for c in concepts]
    if len(concepts) != n_chunks:
        raise ConfigError(f"river_drift: {len(concepts)} concepts given for {n_chunks} chunks")
    if generator == "sea" and any(not 0 <= c <= 3 for c in concepts):
        raise ConfigError(f"river_drift: SEA has concepts (variants) 0-3, got {concepts}")
    if generator == "rbf" and (any(c < 0 for c in concepts) or n_classes < 2 or n_features < 1 or n_centroids < 1):
        raise ConfigError("river_drift: rbf needs concept ids >= 0, n_classes >= 2, n_features >= 1, n_centroids >= 1")

    def seed_of(tag: str) -> int:
        return derive_seed(seed, f"river/{generator}/{tag}") % (2**31)

    def source(concept: int, tag: str, *, train: bool) -> object:
        if generator == "sea":
            return synth.SEA(variant=concept, noise=noise if train else 0.0, seed=seed_of(tag))
        return synth.RandomRBFDrift(
            seed_model=seed_of(f"model/{concept}"), seed_sample=seed_of(tag), n_classes=n_classes,
            n_features=n_features, n_centroids=n_centroids, change_speed=change_speed if train else 0.0,
            n_drift_centroids=n_centroids,
        )

    scale = 0.1 if generator == "sea" else 1.0
    k = 2 if generator == "sea" else n_classes
    classes = tuple(range(k))
    first_seen = list(dict.fromkeys(concepts))
    chunks = []
    for i, c in enumerate(concepts):
        x, y = _river_take(source(c, f"train/{i}", train=True), chunk_size)
        chunks.append(Chunk(i, x * scale, y, classes, None, f"{generator}{c}_0"))
    evals = []
    for j, c in enumerate(first_seen):
        x, y = _river_take(source(c, f"test/{c}", train=False), test_size)
        evals.append(EvalSet(j, x * scale, y, classes, None, f"{generator}{c}_0"))
    return Stream(
        "river_drift", chunks, evals, k, tuple(chunks[0].x.shape[1:]), task_free=task_free,
        info={"generator": generator, "concepts": concepts, "drift_points": [chunk_size * i for i in range(1, n_chunks)],
              "dataset": f"river.{generator}"},
    )


# --------------------------------------------------------------------------------------------
# The standard image benchmarks: class splits of CIFAR-10 and CIFAR-100 with the papers' settings.


def _benchmark_split(ds: Dataset, name: str, n_classes: int, n_chunks: int, task_il: bool, seed: int,
                     train_per_chunk: int | None, test_per_chunk: int | None) -> Stream:
    if ds.n_classes != n_classes:
        dataset = "tiny_imagenet" if name == "split_tinyimagenet" else name.removeprefix("split_")
        raise ConfigError(f"{name} splits a {n_classes}-class dataset ({dataset}), but "
                          f"{ds.name!r} has {ds.n_classes} classes; use dataset {dataset!r} or "
                          f"the generic class_incremental scenario")
    build = task_incremental if task_il else class_incremental
    stream = build(ds, n_chunks=n_chunks, class_order="natural", seed=seed, train_per_chunk=train_per_chunk,
                   test_per_chunk=test_per_chunk)
    return replace(stream, name=name, info={**stream.info, "benchmark": name, "setting": "task-IL" if task_il else "class-IL"})


def split_cifar10(ds: Dataset, *, task_il: bool = False, seed: int = 0, train_per_chunk: int | None = None,
                  test_per_chunk: int | None = None) -> Stream:
    """Seq-CIFAR-10 (Buzzega et al. 2020, DER): five chunks of two classes in the natural class
    order (airplane and automobile first); class-IL, or task-IL with ``task_il = true``. The
    paper's protocol (50 epochs, batch 32, lr 0.03, crop and flip) is the ``cifar10`` dataset's."""
    return _benchmark_split(ds, "split_cifar10", 10, 5, task_il, seed, train_per_chunk, test_per_chunk)


def split_cifar100(ds: Dataset, *, n_chunks: int = 10, task_il: bool = False, seed: int = 0,
                   train_per_chunk: int | None = None, test_per_chunk: int | None = None) -> Stream:
    """Split CIFAR-100: ``n_chunks`` = 10 chunks of ten classes (the default) or 20 of five, in the
    natural class order (as mammoth's seq-cifar100; iCaRL's seed-1993 order is
    ``class_incremental`` with ``class_order`` set to it)."""
    if n_chunks not in (10, 20):
        raise ConfigError(f"split_cifar100: n_chunks must be 10 (10x10 classes) or 20 (20x5), got {n_chunks}; "
                          f"other splits are the class_incremental scenario")
    return _benchmark_split(ds, "split_cifar100", 100, n_chunks, task_il, seed, train_per_chunk, test_per_chunk)


def split_tinyimagenet(ds: Dataset, *, task_il: bool = False, seed: int = 0, train_per_chunk: int | None = None,
                       test_per_chunk: int | None = None) -> Stream:
    """Seq-TinyImageNet (DER; mammoth's seq-tinyimg): ten chunks of twenty classes in the natural
    class order (sorted WordNet ids); class-IL, or task-IL with ``task_il = true``. The paper's
    protocol (100 epochs, batch 32, lr 0.03, crop and flip) is the ``tiny_imagenet`` dataset's."""
    return _benchmark_split(ds, "split_tinyimagenet", 200, 10, task_il, seed, train_per_chunk, test_per_chunk)


# --------------------------------------------------------------------------------------------
# CORe50 (Lomonaco and Maltoni 2017): new instances (sessions as domains) and new classes.


def _core50(ds: Dataset, who: str):

    if not isinstance(ds, SessionDataset) or ds.session_train is None:
        raise ConfigError(f"{who} needs the sessions of CORe50's samples: use dataset 'core50' (got {ds.name!r})")
    return ds


def core50_ni(ds: Dataset, *, seed: int = 0, shuffle_sessions: bool = False, train_per_chunk: int | None = None,
              test_per_chunk: int | None = None) -> Stream:
    """CORe50 NI (new instances): one chunk per training session (s1, s2, s4, s5, s6, s8, s9, s11,
    in that order, or in a seeded order with ``shuffle_sessions``), every chunk holding all classes;
    one evaluation set, the three test sessions (s3, s7, s10). Domain-incremental."""

    ds = _core50(ds, "core50_ni")
    order = list(TRAIN_SESSIONS)
    if shuffle_sessions:
        g = torch.Generator().manual_seed(derive_seed(seed, "core50/sessions"))
        order = [order[i] for i in torch.randperm(len(order), generator=g).tolist()]
    classes = tuple(range(ds.n_classes))
    chunks = []
    for i, session in enumerate(order):
        idx = _subsample((ds.session_train == session).nonzero().flatten(), train_per_chunk, seed, f"train/{i}")
        if not len(idx):
            raise ConfigError(f"core50_ni: training session s{session} has no samples in {ds.name}")
        chunks.append(Chunk(i, ds.train_inputs(idx), ds.y_train[idx], classes, None, f"s{session}_0"))
    te = _subsample(torch.arange(len(ds.y_test)), test_per_chunk, seed, "test/0")
    evals = [EvalSet(0, ds.test_inputs(te), ds.y_test[te], classes, None, "test_sessions")]
    return Stream("core50_ni", chunks, evals, ds.n_classes, ds.input_shape,
                  info={"sessions": order, "dataset": ds.name, "setting": "domain-IL (NI)"})


def core50_nc(ds: Dataset, *, seed: int = 0, class_order: str | Sequence[int] = "seeded", first_classes: int = 10,
              classes_per_chunk: int = 5, task_il: bool = False, train_per_chunk: int | None = None,
              test_per_chunk: int | None = None) -> Stream:
    """CORe50 NC (new classes): the training sessions' samples, split by class into a first chunk
    of ``first_classes`` objects and then chunks of ``classes_per_chunk`` (10 + 8x5 for the 50
    objects: nine chunks), in a seeded class order (``class_order = "natural"`` or a list for a
    fixed one); each chunk's evaluation set is the test sessions' samples of its classes.
    Class-IL, or task-IL with ``task_il = true``."""

    ds = _core50(ds, "core50_nc")
    n = ds.n_classes
    if not 0 < first_classes <= n or classes_per_chunk < 1 or (n - first_classes) % classes_per_chunk:
        raise ConfigError(f"core50_nc: {n} classes do not split into a first chunk of {first_classes} and chunks of "
                          f"{classes_per_chunk}")
    order = _class_order(n, class_order, seed)
    groups = [order[:first_classes]] + [order[k:k + classes_per_chunk] for k in range(first_classes, n, classes_per_chunk)]
    chunks, evals = [], []
    for i, group in enumerate(groups):
        cls = torch.tensor(group)
        tr = _subsample(torch.isin(ds.y_train, cls).nonzero().flatten(), train_per_chunk, seed, f"train/{i}")
        te = _subsample(torch.isin(ds.y_test, cls).nonzero().flatten(), test_per_chunk, seed, f"test/{i}")
        if not len(tr) or not len(te):
            raise ConfigError(f"core50_nc: chunk {i} (classes {tuple(group)}) has no training or no test samples")
        task_tr = torch.full((len(tr),), i, dtype=torch.int64) if task_il else None
        task_te = torch.full((len(te),), i, dtype=torch.int64) if task_il else None
        name = f"task{i}_" + "-".join(map(str, group))
        chunks.append(Chunk(i, ds.train_inputs(tr), ds.y_train[tr], tuple(group), task_tr, name))
        evals.append(EvalSet(i, ds.test_inputs(te), ds.y_test[te], tuple(group), task_te, name))
    return Stream("core50_nc", chunks, evals, n, ds.input_shape,
                  task_classes=[tuple(g) for g in groups] if task_il else None,
                  info={"class_order": order, "dataset": ds.name, "setting": "task-IL" if task_il else "class-IL (NC)"})


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    description: str
    build: Callable[..., Stream]


SCENARIOS: Registry = Registry("scenario", {
    s.name: s
    for s in (
        ScenarioInfo("class_incremental", "disjoint classes per chunk, no task id, single head", class_incremental),
        ScenarioInfo("task_incremental", "disjoint classes per chunk, task id given, per-task prediction", task_incremental),
        ScenarioInfo("domain_incremental", "same classes, new input domain per chunk (permutation or rotation)", domain_incremental),
        ScenarioInfo("online", "task-free online stream: class-incremental split, boundaries hidden", online),
        ScenarioInfo("blurry", "Si-Blurry: random class groups and chunk lengths, classes overlap across chunks", blurry),
        ScenarioInfo("label_permuted", "a long stream (100 by default) of seeded label permutations of the same inputs",
                     label_permuted),
        ScenarioInfo("concept_drift", "labels remapped by seeded permutations at random times; old mappings recur", concept_drift),
        ScenarioInfo("river_drift", "river's SEA / RandomRBFDrift generators with drift points (dataset ignored)", river_drift),
        ScenarioInfo("split_cifar10", "Seq-CIFAR-10 of DER: 5 chunks of 2 classes, natural order (task_il option)", split_cifar10),
        ScenarioInfo("split_cifar100", "Split CIFAR-100: 10 chunks of 10 classes or 20 of 5 (task_il option)", split_cifar100),
        ScenarioInfo("core50_ni", "CORe50 NI: one chunk per training session (new instances), test sessions s3, s7, s10",
                     core50_ni),
        ScenarioInfo("core50_nc", "CORe50 NC: 10 then 5 new objects per chunk (9 chunks), test sessions s3, s7, s10",
                     core50_nc),
        ScenarioInfo("split_tinyimagenet", "Seq-TinyImageNet of DER: 10 chunks of 20 classes, natural order (task_il option)",
                     split_tinyimagenet),
        # L2M lifetimes (condensed, dispersed, alternating, permuted, single-task expert), built on
        # the base splits by lifelong.data.lifetimes
        *(ScenarioInfo(name, text, build) for name, text, build in lifetimes.L2M_SCENARIOS),
    )
})

#: Parameters a scenario builder receives from the runner, not from the ``[scenario]`` section.
RUNNER_FILLED = ("ds", "seed")


def scenario_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """Check the options of scenario ``name`` against its builder's signature.

    Returns the options converted (an int given for a float becomes a float); an unknown scenario,
    an unknown option or a value of the wrong type raises :class:`ConfigError`.

    Examples
    --------
    >>> scenario_options("blurry", {"n_chunks": 3, "blurry_ratio": 0})
    {'n_chunks': 3, 'blurry_ratio': 0.0}
    >>> scenario_options("blurry", {"n_chunks": 2.5})
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: scenario 'blurry': n_chunks must be an integer, got 2.5
    """
    info = SCENARIOS.lookup(name)
    options = dict(options)
    fraction = options.pop("label_fraction", None)  # every scenario takes it (hide_labels)
    out = check_options(info.build, options, where=f"scenario {name!r}:", skip=RUNNER_FILLED)
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) <= 1.0:
            raise ConfigError(f"scenario {name!r}: label_fraction must be a number in (0, 1] (the seeded share of "
                              f"training samples that keep their label), got {fraction!r}")
        out["label_fraction"] = float(fraction)
    return out


def build_stream(name: str, ds: Dataset, *, seed: int, **options: object) -> Stream:
    """Build a registered scenario; an unknown name, an unknown option or an option of the wrong
    type raises :class:`ConfigError` (checked before anything is built).

    Every scenario also takes ``label_fraction`` (default 1.0): see :func:`hide_labels`.
    """
    opts = scenario_options(name, options)
    fraction = opts.pop("label_fraction", 1.0)
    return hide_labels(SCENARIOS[name].build(ds, seed=seed, **opts), fraction, seed=seed)


def hide_labels(stream: Stream, fraction: float, *, seed: int) -> Stream:
    """A semi-supervised view of ``stream``: in each training chunk a seeded ``fraction`` of the
    samples keep their label (``round(fraction·n)``, at least one), the others get ``y = -1``. The
    evaluation sets keep every label. ``fraction = 1`` returns ``stream`` itself.

    The loop hands a learner only the labelled samples of each batch unless the learner declares
    ``learns_from_unlabelled = True`` (:func:`lifelong.learn.loop.labelled_only`).

    Examples
    --------
    >>> from lifelong.data.datasets import load_dataset
    >>> s = hide_labels(class_incremental(load_dataset("blobs", seed=0), n_chunks=2), 0.1, seed=0)
    >>> c = s.chunks[0]
    >>> int((c.y >= 0).sum()), len(c), s.info["label_fraction"]
    (50, 500, 0.1)
    """
    if fraction >= 1.0:
        return stream
    chunks = []
    for c in stream.chunks:
        g = torch.Generator().manual_seed(derive_seed(seed, f"labels/{c.index}"))
        n = len(c)
        keep = torch.randperm(n, generator=g)[: max(1, round(fraction * n))]
        y = torch.full_like(c.y, -1)
        y[keep] = c.y[keep]
        chunks.append(replace(c, y=y))
    return replace(stream, chunks=chunks, info={**stream.info, "label_fraction": fraction})
