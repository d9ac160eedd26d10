"""L2M lifetimes: alternating learning and evaluation blocks over a base split, and the streams of
the single-task experts (STE) they are compared with. This module builds streams only (the data
stage); the experts are trained by :mod:`lifelong.experiments.experts` and a run is scored by
:mod:`lifelong.evaluate.lifetimes`.

A *lifetime* (New et al., "Lifelong Learning Metrics", arXiv 2201.08278) is a sequence of learning
blocks, each on one task, with an evaluation block on every task after each of them. Here the tasks
come from a base split of the dataset (``split``):

- ``"class"``: class groups, no task id (class-incremental, single head);
- ``"task"``: class groups with task ids (task-incremental, per-task prediction);
- ``"domain"``: every class in a new input domain per task (pixel permutations or rotations).

The base-split options keep the names of the base scenarios: ``n_chunks`` is the number of tasks
(the chunks of the base split), ``classes_per_chunk``, ``train_per_chunk`` and ``test_per_chunk``
are per task.

Each learning block is one :class:`~lifelong.data.Chunk` whose ``name`` is its task's name; a task
that recurs keeps its name and its evaluation set. Evaluation sets are ordered by the task's first
learning block, so in a lifetime where every task is learned once, chunk ``i`` trains evaluation
set ``i`` and the classic accuracy-matrix metrics apply. With recurring tasks the accuracy matrix is
not square and the classic metrics are NaN; the L2M metrics are the ones to read. The loop
evaluates after every chunk, which gives the evaluation blocks (see
:func:`lifelong.evaluate.l2logger.records_to_l2rows`).

Scenario types (``scenario_type`` in the l2logger ``scenario_info.json``), our definitions:

``l2m_condensed``
    every task learned once, in one block, in base order: ``a b c``.
``l2m_dispersed``
    each task's training data cut into ``repeats`` seeded random pieces; the lifetime visits every
    task once per round, ``repeats`` rounds: ``a1 b1 c1 a2 b2 c2 ...``.
``l2m_alternating``
    tasks in consecutive pairs, switching back and forth within a pair ``repeats`` times before the
    next pair: ``a b a b | c d c d``; with an odd number of tasks the last one pairs with the first
    (``e a e a``), so task ``a`` recurs there too.
``l2m_permuted``
    the blocks of a dispersed lifetime (``repeats`` pieces per task, default 1) in a seeded random
    order, drawn so that no task follows itself where that is possible; with ``repeats = 1`` this
    is a random task order.
``l2m_ste``
    a single-task expert: one task (``task``, an index in base order or a name) learned alone, all
    of its training data in one block, evaluated on that task only.

``sleep = true`` adds a *sleep* learning block after every learning block: consolidation without
new data. The loop (:func:`lifelong.learn.loop.iter_run`) replays batches from the learner's memory when
it has a non-empty one and trains on them with plain cross-entropy; a learner without a memory
rehearses ``sleep_size`` stored training samples of the tasks learned so far (the sleep chunk's own
data). Its records are ``train`` records with ``extra = {"subtype": "sleep", "source": ...}``, which
become ``block_subtype = "sleep"`` rows in the l2logger log. A sleep block carries the name of the
task learned just before it.

``ste = true`` asks :func:`lifelong.experiments.run.execute` to also train the same learner on each task alone
(:func:`lifelong.experiments.experts.run_experts`, on the streams of :func:`expert_streams`), store
those runs under ``<run>/ste/`` and pass them to the L2M metrics as single-task-expert data
(relative performance and sample efficiency need them).

Examples
--------
>>> import torch
>>> from lifelong.data import Dataset
>>> g = torch.Generator().manual_seed(0)
>>> ds = Dataset("toy", torch.rand(120, 4, generator=g), torch.arange(120) % 6,
...              torch.rand(30, 4, generator=g), torch.arange(30) % 6)
>>> s = l2m_dispersed(ds, n_chunks=3, repeats=2)
>>> [c.name for c in s.chunks]
['task0_0-1', 'task1_2-3', 'task2_4-5', 'task0_0-1', 'task1_2-3', 'task2_4-5']
>>> [len(c) for c in s.chunks], [e.name for e in s.eval_sets]
([20, 20, 20, 20, 20, 20], ['task0_0-1', 'task1_2-3', 'task2_4-5'])
>>> s = l2m_alternating(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=8)
>>> [c.name.split("_")[0] + ("*" if c.index in s.info["sleep_chunks"] else "") for c in s.chunks]
['task0', 'task0*', 'task1', 'task1*', 'task0', 'task0*', 'task1', 'task1*', 'task2', 'task2*', 'task0', 'task0*', 'task2', 'task2*', 'task0', 'task0*']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from lifelong.data import Chunk, Dataset
from lifelong.data.splits import Stream, class_incremental, domain_incremental, task_incremental
from lifelong.errors import ConfigError
from lifelong.seeding import derive_seed

SCENARIO_TYPES = ("condensed", "dispersed", "alternating", "permuted", "ste")
#: Scenario options that shape the lifetime but not the base split (an STE run drops them).
LIFETIME_ONLY = ("repeats", "sleep", "sleep_size", "ste")
_BASE_DEFAULTS = {"split": "class", "n_chunks": 5, "classes_per_chunk": None, "class_order": "natural",
                  "transform": "permutation", "train_per_chunk": None, "test_per_chunk": None}


# --------------------------------------------------------------------------------------------
# schedules: which task each learning block trains


def lifetime_schedule(kind: str, n_tasks: int, *, repeats: int = 1, seed: int = 0) -> list[int]:
    """The task of each learning block of a lifetime, as indices into the base split.

    Parameters
    ----------
    kind : {"condensed", "dispersed", "alternating", "permuted"}
        The scenario type (see the module docstring).
    n_tasks : int
        Number of tasks in the base split.
    repeats : int, default 1
        Learning blocks per task (condensed ignores it; alternating gives the first task more when
        the number of tasks is odd).
    seed : int, default 0
        Seeds the permuted order.

    Returns
    -------
    list of int
        One task index per learning block. Every task occurs at least once.

    Examples
    --------
    >>> lifetime_schedule("dispersed", 3, repeats=2)
    [0, 1, 2, 0, 1, 2]
    >>> lifetime_schedule("alternating", 3, repeats=2)
    [0, 1, 0, 1, 2, 0, 2, 0]
    >>> sorted(lifetime_schedule("permuted", 4, seed=1)) == [0, 1, 2, 3]
    True
    """
    if n_tasks < 1:
        raise ConfigError(f"an L2M lifetime needs at least one task, got n_tasks={n_tasks}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if kind == "condensed":
        return list(range(n_tasks))
    if kind == "dispersed":
        return [t for _ in range(repeats) for t in range(n_tasks)]
    if kind == "alternating":
        if n_tasks < 2:
            raise ConfigError("l2m_alternating needs at least 2 tasks to alternate between")
        pairs = [(a, a + 1) for a in range(0, n_tasks - 1, 2)]
        if n_tasks % 2:
            pairs.append((n_tasks - 1, 0))
        return [t for a, b in pairs for _ in range(repeats) for t in (a, b)]
    if kind == "permuted":
        blocks = torch.tensor([t for _ in range(repeats) for t in range(n_tasks)])
        g = torch.Generator().manual_seed(derive_seed(seed, "l2m-permuted"))
        order = blocks[torch.randperm(len(blocks), generator=g)]
        # Redraw (deterministically) while a task follows itself; 1000 draws suffice by far
        # whenever a valid order exists (n_tasks >= 2), and n_tasks == 1 has none.
        for _ in range(1000):
            if n_tasks < 2 or not bool((order[1:] == order[:-1]).any()):
                break
            order = blocks[torch.randperm(len(blocks), generator=g)]
        return order.tolist()
    raise ConfigError(f"unknown L2M scenario type {kind!r}; choose one of {SCENARIO_TYPES[:-1]}")


def _pieces(n: int, k: int, seed: int, tag: str) -> list[Tensor]:
    """A seeded split of ``arange(n)`` into ``k`` sorted parts whose sizes differ by at most 1."""
    g = torch.Generator().manual_seed(derive_seed(seed, tag))
    perm = torch.randperm(n, generator=g)
    return [p.sort().values for p in torch.tensor_split(perm, k)]


# --------------------------------------------------------------------------------------------
# building lifetimes


def _base(
    ds: Dataset, *, split: str, n_chunks: int, classes_per_chunk: int | None, class_order: str | Sequence[int],
    transform: str, train_per_chunk: int | None, test_per_chunk: int | None, seed: int,
) -> Stream:
    if split in ("class", "task"):
        build = class_incremental if split == "class" else task_incremental
        return build(ds, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order, seed=seed,
                     train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)
    if split == "domain":
        return domain_incremental(ds, n_chunks=n_chunks, transform=transform, seed=seed,
                                     train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)
    raise ConfigError(f"L2M scenarios: split must be 'class', 'task' or 'domain', got {split!r}")


def _sleep_chunk(index: int, base: Stream, learned: list[tuple[int, Tensor]], size: int, seed: int) -> Chunk:
    """A sleep block: ``size`` seeded training samples of the pieces learned so far (the rehearsal
    data used by learners without a memory), named after the task learned last."""
    owner = torch.cat([torch.full((len(idx),), t) for t, idx in learned])  # (N_learned,) base task of each row
    rows = torch.cat([idx for _, idx in learned])  # (N_learned,) row within that task's chunk
    g = torch.Generator().manual_seed(derive_seed(seed, f"l2m-sleep/{index}"))
    pick = torch.randperm(len(rows), generator=g)[:size].sort().values
    xs, ys, ts, classes = [], [], [], set()
    for t in owner[pick].unique().tolist():
        c = base.chunks[t]
        r = rows[pick][owner[pick] == t]
        xs.append(c.x[r]), ys.append(c.y[r]), ts.append(c.task[r] if c.task is not None else None)
        classes.update(c.classes)
    task = torch.cat(ts) if ts[0] is not None else None
    last = base.chunks[learned[-1][0]]
    return Chunk(index, torch.cat(xs), torch.cat(ys), tuple(sorted(classes)), task, last.name)


def _lifetime(
    ds: Dataset, kind: str, *, repeats: int, sleep: bool, sleep_size: int, ste: bool, seed: int, **base_opts: Any,
) -> Stream:
    if not isinstance(sleep, bool) or not isinstance(ste, bool):
        raise ConfigError("L2M scenarios: sleep and ste must be true or false")
    if isinstance(sleep_size, bool) or not isinstance(sleep_size, int) or sleep_size < 1:
        raise ConfigError(f"L2M scenarios: sleep_size must be a positive integer, got {sleep_size!r}")
    base = _base(ds, seed=seed, **base_opts)
    order = lifetime_schedule(kind, len(base.chunks), repeats=repeats, seed=seed)
    counts = Counter(order)
    pieces = {}
    for t, k in counts.items():
        if len(base.chunks[t]) < k:
            raise ConfigError(f"l2m_{kind}: task {base.chunks[t].name} has {len(base.chunks[t])} training samples, "
                              f"too few for {k} learning blocks; lower repeats")
        pieces[t] = _pieces(len(base.chunks[t]), k, seed, f"l2m-pieces/{t}")
    first = list(dict.fromkeys(order))  # tasks in order of first learning: evaluation set j
    evals = [replace(base.eval_sets[t], index=j) for j, t in enumerate(first)]
    chunks: list[Chunk] = []
    sleep_chunks: list[int] = []
    used: Counter[int] = Counter()
    learned: list[tuple[int, Tensor]] = []
    for t in order:
        c, idx = base.chunks[t], pieces[t][used[t]]
        used[t] += 1
        learned.append((t, idx))
        task = c.task[idx] if c.task is not None else None
        chunks.append(Chunk(len(chunks), c.x[idx], c.y[idx], c.classes, task, c.name))
        if sleep:
            sleep_chunks.append(len(chunks))
            chunks.append(_sleep_chunk(len(chunks), base, learned, sleep_size, seed))
    return Stream(
        f"l2m_{kind}", chunks, evals, base.n_classes, base.input_shape, task_classes=base.task_classes,
        info={
            **base.info, "l2m": True, "scenario_type": kind, "split": base_opts["split"], "repeats": repeats,
            "block_subtypes": ["sleep" if i in sleep_chunks else "wake" for i in range(len(chunks))],
            "sleep_chunks": sleep_chunks, "ste": ste,
        },
    )


_BASE_DOC = """
    Parameters
    ----------
    ds : Dataset
        The dataset the base split cuts into tasks.
    split : {"class", "task", "domain"}, default "class"
        Tasks are class groups without task ids, class groups with task ids, or input domains.
    n_chunks : int, default 5
        Number of tasks: the chunks of the base split (the option every scenario shares).
    classes_per_chunk : int, optional
        Classes per task for the class splits (default: all classes split evenly).
    class_order : "natural", "seeded" or list of int, default "natural"
        Class order of the class splits.
    transform : {"permutation", "rotation"}, default "permutation"
        The domain change of ``split = "domain"``.
    train_per_chunk, test_per_chunk : int, optional
        Seeded subsample sizes per task of the base split (all of the task's samples by default).
    sleep : bool, default False
        Add a sleep (consolidation) block after every learning block.
    sleep_size : int, default 256
        Samples replayed per sleep block (the sleep chunk's length).
    ste : bool, default False
        Ask the runner to train single-task experts for the L2M metrics.
    seed : int, default 0
        Seeds the base split, the pieces and the order.

    Returns
    -------
    Stream
        ``info`` holds ``scenario_type``, ``block_subtypes`` (per chunk), ``sleep_chunks``, ``ste``.
"""


def l2m_condensed(
    ds: Dataset, *, split: str = "class", n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", transform: str = "permutation",
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
    sleep: bool = False, sleep_size: int = 256, ste: bool = False, seed: int = 0,
) -> Stream:
    """A condensed lifetime: every task learned once, in one block, in base order."""
    return _lifetime(ds, "condensed", repeats=1, sleep=sleep, sleep_size=sleep_size, ste=ste, seed=seed, split=split,
                     n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order, transform=transform,
                     train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)


def l2m_dispersed(
    ds: Dataset, *, repeats: int = 3, split: str = "class", n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", transform: str = "permutation",
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
    sleep: bool = False, sleep_size: int = 256, ste: bool = False, seed: int = 0,
) -> Stream:
    """A dispersed lifetime: each task cut into ``repeats`` pieces, visited once per round.

    ``repeats`` (default 3, at least 2) is the number of rounds; three or more give the performance
    recovery metric two recovery times per task.
    """
    if repeats < 2:
        raise ConfigError(f"l2m_dispersed needs repeats >= 2 so that tasks come back (got {repeats}); "
                          "use l2m_condensed for one block per task")
    return _lifetime(ds, "dispersed", repeats=repeats, sleep=sleep, sleep_size=sleep_size, ste=ste, seed=seed,
                     split=split, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order,
                     transform=transform, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)


def l2m_alternating(
    ds: Dataset, *, repeats: int = 3, split: str = "class", n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", transform: str = "permutation",
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
    sleep: bool = False, sleep_size: int = 256, ste: bool = False, seed: int = 0,
) -> Stream:
    """An alternating lifetime: back and forth ``repeats`` times within consecutive pairs of tasks."""
    if repeats < 2:
        raise ConfigError(f"l2m_alternating needs repeats >= 2 to alternate (got {repeats})")
    return _lifetime(ds, "alternating", repeats=repeats, sleep=sleep, sleep_size=sleep_size, ste=ste, seed=seed,
                     split=split, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order,
                     transform=transform, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)


def l2m_permuted(
    ds: Dataset, *, repeats: int = 1, split: str = "class", n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", transform: str = "permutation",
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
    sleep: bool = False, sleep_size: int = 256, ste: bool = False, seed: int = 0,
) -> Stream:
    """A permuted lifetime: ``repeats`` pieces per task, all blocks in a seeded random order."""
    return _lifetime(ds, "permuted", repeats=repeats, sleep=sleep, sleep_size=sleep_size, ste=ste, seed=seed,
                     split=split, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order,
                     transform=transform, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk)


def l2m_ste(
    ds: Dataset, *, task: int | str = 0, split: str = "class", n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", transform: str = "permutation",
    train_per_chunk: int | None = None, test_per_chunk: int | None = None, seed: int = 0,
) -> Stream:
    """A single-task-expert run: task ``task`` (base index or name) alone, all its data in one block.

    With the same base options and seed as a lifetime, the task's data and evaluation set are the
    ones the lifetime uses.
    """
    base = _base(ds, split=split, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order,
                 transform=transform, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk, seed=seed)
    names = [c.name.lower() for c in base.chunks]
    if isinstance(task, str):
        if task.lower() not in names:
            raise ConfigError(f"l2m_ste: no task named {task!r}; the base split has {names}")
        return _expert(base, names.index(task.lower()), split)
    if isinstance(task, int) and not isinstance(task, bool) and 0 <= task < len(names):
        return _expert(base, task, split)
    raise ConfigError(f"l2m_ste: task must be a task name or an index in [0, {len(names) - 1}], got {task!r}")


def _expert(base: Stream, t: int, split: str) -> Stream:
    """The STE stream of base task ``t``: its whole training chunk, its evaluation set."""
    return Stream(
        "l2m_ste", [replace(base.chunks[t], index=0)], [replace(base.eval_sets[t], index=0)], base.n_classes,
        base.input_shape, task_classes=base.task_classes,
        info={**base.info, "l2m": True, "scenario_type": "ste", "split": split, "ste_task": base.chunks[t].name,
              "block_subtypes": ["wake"], "sleep_chunks": []},
    )


for _f in (l2m_condensed, l2m_dispersed, l2m_alternating, l2m_permuted):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _BASE_DOC

#: (name, description, builder) of every L2M scenario; :mod:`lifelong.data.scenarios` registers them.
L2M_SCENARIOS = (
    ("l2m_condensed", "L2M lifetime: each task learned once, evaluation blocks between (sleep optional)", l2m_condensed),
    ("l2m_dispersed", "L2M lifetime: tasks split into pieces and revisited in rounds", l2m_dispersed),
    ("l2m_alternating", "L2M lifetime: back and forth within pairs of tasks", l2m_alternating),
    ("l2m_permuted", "L2M lifetime: task blocks in a seeded random order", l2m_permuted),
    ("l2m_ste", "L2M single-task expert: one task learned alone", l2m_ste),
)


def expert_streams(ds: Dataset, scenario: dict[str, Any], seed: int) -> dict[str, Stream]:
    """The STE stream of every task of a lifetime, keyed by task name.

    Parameters
    ----------
    ds : Dataset
        The lifetime's dataset.
    scenario : dict
        The lifetime's ``[scenario]`` section (``name`` and options).
    seed : int
        The seed; the same seed gives the lifetime's base split.

    Returns
    -------
    dict of str to Stream
        One ``l2m_ste`` stream per task of the base split, in base order.
    """
    name = scenario.get("name", "")
    if name not in {n for n, _, _ in L2M_SCENARIOS} or name == "l2m_ste":
        raise ConfigError(f"single-task experts need an L2M lifetime scenario (l2m_condensed, l2m_dispersed, ...), "
                          f"not {name!r}")
    opts = {**_BASE_DEFAULTS, **{k: v for k, v in scenario.items() if k != "name" and k not in LIFETIME_ONLY}}
    unknown = sorted(set(opts) - set(_BASE_DEFAULTS))
    if unknown:
        raise ConfigError(f"{name}: unknown option(s) {unknown}")
    base = _base(ds, seed=seed, **opts)
    out = {c.name: _expert(base, t, opts["split"]) for t, c in enumerate(base.chunks)}
    return out
