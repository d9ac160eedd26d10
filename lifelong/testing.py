"""The contract a learner or a memory must honour, as checks a plugin author runs in their own tests.

:func:`check_learner` and :func:`check_memory` run every check on small synthetic data (the built-in
``blobs`` dataset; a few seconds per learner) and raise one :class:`AssertionError` that names each
failed check and says what to fix. :func:`learner_checks` and :func:`memory_checks` give the same
checks one by one as ``(name, check)`` pairs, so that pytest can parametrize over them. The
project's own contract suite (``tests/contract/``) runs these checks over every registered learner
and memory, so a plugin that passes them behaves like a built-in method.

A learner class is built as ``cls(model, seed=seed, task_classes=..., **hyper_parameters)``, where
``model`` is a small :func:`~lifelong.learn.nets.mlp` (a :class:`~lifelong.learn.nets.Net` with a
linear ``head``), exactly as ``lifelong run`` builds it. A memory class is built as
``cls(capacity, seed=seed, **options)``.

Examples
--------
>>> from lifelong.learn.methods.naive import Naive
>>> check_learner(Naive)
>>> [name for name, _ in learner_checks(Naive)][:3]
['follows_the_protocol', 'hyper_parameters_stored_as_given', 'predict_shape_and_finite']
>>> from lifelong.learn.memory import ReservoirMemory
>>> check_memory(ReservoirMemory)

In a plugin's own test suite::

    import pytest
    from lifelong.testing import check_learner, learner_checks
    from my_pkg.learner import MyLearner

    def test_my_learner_follows_the_contract():
        check_learner(MyLearner, my_strength=0.5)

    @pytest.mark.parametrize("name,check", learner_checks(MyLearner, my_strength=0.5))
    def test_one_check(name, check):  # or one test per check
        check()
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lifelong.data import Batch
from lifelong.data.datasets import load_dataset
from lifelong.data.scenarios import Stream, class_incremental, domain_incremental, task_incremental
from lifelong.errors import DataError, LifelongError
from lifelong.learn.base import Consolidator, DriftAware, LearnerProtocol, MemoryUpdater, StepStats
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.memory import Memory
from lifelong.learn.nets import mlp

__all__ = ["check_learner", "check_memory", "learner_checks", "memory_checks", "LEARNER_CHECKS", "MEMORY_CHECKS"]

#: Set by each check (``seed``) or by the stream (``task_classes``); not accepted as options.
RESERVED = ("seed", "task_classes")
DATA_VIEWS = ("stream", "cumulative", "joint")
BATCH = 8  # mini-batch size of every check's stream
#: "learns above chance": final accuracy on a stationary 4-class stream must reach this (chance 0.25)
EASY_ACCURACY = 0.6


# -- data -----------------------------------------------------------------------------------------
def _dataset(n_classes: int = 6):
    """Well-separated Gaussian classes (12 dims, 40 train and 20 test samples per class)."""
    return load_dataset("blobs", seed=0, n_classes=n_classes, dim=12, n_per_class=40, n_test_per_class=20,
                        separation=6.0)


def _run_settings(s: "LearnerSubject") -> dict[str, Stream]:
    """The settings the loop runs this learner on: a learner that declares ``needs_new_classes``
    is refused domain-incremental streams (:func:`lifelong.learn.loop.check_new_classes`)."""
    streams = _streams()
    if getattr(s.cls, "needs_new_classes", False):
        streams.pop("domain_incremental")
    return streams


def _streams() -> dict[str, Stream]:
    """Three chunks of each setting the built-in learners support."""
    ds = _dataset()
    return {
        "class_incremental": class_incremental(ds, n_chunks=3),
        "task_incremental": task_incremental(ds, n_chunks=3),
        "domain_incremental": domain_incremental(ds, n_chunks=3),
    }


def _easy_stream() -> Stream:
    """One stationary chunk with all 4 classes (no shift at all): any learner must learn it."""
    return domain_incremental(_dataset(n_classes=4), n_chunks=1, first_identity=True)


def _batches(stream: Stream, chunk: int, seed: int = 0) -> list[Batch]:
    return list(stream.chunks[chunk].batches(BATCH, torch.Generator().manual_seed(seed)))


# -- comparing states -----------------------------------------------------------------------------
def _difference(a: Any, b: Any, path: str = "state") -> str | None:
    """Where two nested states differ (tensors compared exactly), or ``None`` when they are equal."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{path}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        return None if torch.equal(a, b) else f"{path} has different values"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            d = _difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    try:
        same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    except Exception:  # objects without a usable ==
        same = a is b
    return None if same is True else f"{path}: {a!r} vs {b!r}"


def _snapshot(state: dict) -> dict:
    """A deep copy: a model's state_dict holds live parameter tensors that training changes in place."""
    return copy.deepcopy(state)


def _saved_and_loaded(state: dict) -> dict:
    """``state`` after ``torch.save`` and ``torch.load(weights_only=True)``, as a checkpoint would be."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    try:
        return torch.load(buf, weights_only=True)
    except Exception as e:
        raise AssertionError(
            f"state_dict() cannot be loaded with torch.load(weights_only=True) ({type(e).__name__}: {e}); keep "
            "only tensors, numbers, strings and lists/dicts of them (no objects, no lambdas)"
        ) from None


class _GlobalRandomState:
    """Records the global random states (torch, numpy, random) to check that they are left alone."""

    def __init__(self) -> None:
        self.torch = torch.random.get_rng_state()
        self.numpy = np.random.get_state()
        self.random = random.getstate()

    def changed(self) -> list[str]:
        out = []
        if not torch.equal(self.torch, torch.random.get_rng_state()):
            out.append("torch (torch.rand/randn/randint/randperm/dropout without a generator)")
        now = np.random.get_state()
        if not (self.numpy[0] == now[0] and np.array_equal(self.numpy[1], now[1]) and self.numpy[2:] == now[2:]):
            out.append("numpy (np.random.* functions)")
        if self.random != random.getstate():
            out.append("random (the random module)")
        return out


# -- learner checks -------------------------------------------------------------------------------
def keyword_hyper_parameters(cls: type) -> dict[str, Any]:
    """The keyword-only parameters of ``cls.__init__`` along its MRO, with their defaults.

    A parameter without a default maps to :data:`inspect.Parameter.empty`.
    """
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                out[p.name] = p.default
    return out


@dataclass
class LearnerSubject:
    """What a learner check needs: the class, the hyper-parameters to build it with, and builders."""

    cls: type
    hyper_parameters: dict[str, Any] = field(default_factory=dict)

    def build(self, stream: Stream, seed: int = 0, **changes: Any) -> Any:
        model = mlp(stream.input_shape, stream.n_classes, hidden=(16,), seed=seed)
        hp = {**self.hyper_parameters, **changes}
        return self.cls(model, seed=seed, task_classes=stream.task_classes, **hp)

    def train(self, learner: Any, stream: Stream, n_chunks: int, seed: int = 1) -> None:
        """Observe the first ``n_chunks`` chunks, with ``end_chunk`` after each (as the loop does)."""
        for i in range(n_chunks):
            for batch in _batches(stream, i, seed):
                learner.observe(batch)
            if not stream.task_free:
                learner.end_chunk()

    def records(self, stream: Stream, seed: int) -> list[dict]:
        learner = self.build(stream, seed=seed)
        return [r.to_json() for r in iter_run(stream, learner, LoopConfig(batch_size=BATCH), seed=seed)]


def _check_protocol(s: LearnerSubject) -> None:
    """Declares `name`, `data_view`, `needs_boundaries`; has the protocol's methods and `n_classes`."""
    cls = s.cls
    name = getattr(cls, "name", None)
    assert isinstance(name, str) and name, f"give the class a non-empty string attribute `name` (got {name!r})"
    view = getattr(cls, "data_view", None)
    assert view in DATA_VIEWS, f"class attribute `data_view` must be one of {DATA_VIEWS} (got {view!r})"
    nb = getattr(cls, "needs_boundaries", None)
    assert isinstance(nb, bool), (
        f"class attribute `needs_boundaries` must be True or False (got {nb!r}): True when end_chunk does work"
    )
    for stream in _streams().values():
        learner = s.build(stream)
        missing = [m for m in ("observe", "predict", "end_chunk", "state_dict", "load_state_dict")
                   if not callable(getattr(learner, m, None))]
        assert not missing, f"implement {', '.join(missing)} (see lifelong.learn.base.LearnerProtocol)"
        assert isinstance(learner, LearnerProtocol), "the learner must satisfy lifelong.learn.base.LearnerProtocol"
        assert isinstance(getattr(learner, "needs_boundaries", None), bool), "`needs_boundaries` must be True or False"
        assert getattr(learner, "n_classes", None) == stream.n_classes, (
            f"`n_classes` must be the width of the model's head ({stream.n_classes}), got "
            f"{getattr(learner, 'n_classes', None)!r}"
        )


def _perturbed(value: Any) -> Any:
    """A different value of the same type for numbers (None for anything else: not perturbed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value + 1
    return value / 2 if value else 0.5


def _check_hyper_parameters(s: LearnerSubject) -> None:
    """Every keyword-only hyper-parameter is readable as `self.<name>`, unchanged (also when changed alone)."""
    stream = _streams()["class_incremental"]
    params = {k: v for k, v in keyword_hyper_parameters(s.cls).items() if k not in RESERVED}
    unknown = sorted(set(s.hyper_parameters) - set(params))
    assert not unknown, f"{', '.join(unknown)} given but not keyword-only parameters of {s.cls.__name__}.__init__"
    used = {k: s.hyper_parameters.get(k, v) for k, v in params.items() if k in s.hyper_parameters
            or v is not inspect.Parameter.empty}

    def stored(learner: Any, values: dict[str, Any], how: str) -> None:
        for k, v in values.items():
            assert hasattr(learner, k), (
                f"hyper-parameter {k!r} is not readable as `self.{k}`: store every keyword-only "
                f"hyper-parameter under its own name, unchanged"
            )
            got = getattr(learner, k)
            d = _difference(got, v, k)
            assert d is None and type(got) is type(v), (
                f"hyper-parameter {k!r} {how} {v!r} but `self.{k}` is {got!r}: store it unchanged "
                f"(convert or derive values in other attributes)"
            )

    stored(s.build(stream), used, "was given as" if used else "defaults to")
    # Each numeric hyper-parameter changed on its own must be stored as the new value (this catches
    # an attribute set to a constant that happens to equal the default).
    for k, v in used.items():
        new = _perturbed(v)
        if new is None:
            continue
        try:
            learner = s.build(stream, **{k: new})
        except (LifelongError, ValueError):
            continue  # the learner refuses that value: fine, it validates its options
        stored(learner, {k: new}, "was given as")


def _check_predict(s: LearnerSubject) -> None:
    """`predict` gives finite `(B, n_classes)` logits before and after training, the same when repeated."""
    for setting, stream in _streams().items():
        learner = s.build(stream)
        for when in ("before any observe", "after training"):
            for ev in stream.eval_sets:
                x, task = ev.x[:5], (ev.task[:5] if ev.task is not None else None)
                out = learner.predict(x, task)
                assert isinstance(out, Tensor) and out.shape == (5, stream.n_classes), (
                    f"{setting}, {when}: predict(x) must return (B, n_classes) = (5, {stream.n_classes}) logits, "
                    f"got {getattr(out, 'shape', type(out))}"
                )
                assert out.dtype.is_floating_point and not torch.isnan(out).any(), (
                    f"{setting}, {when}: predict returned NaN or non-float logits"
                )
                assert torch.isfinite(out.max(1).values).all(), (
                    f"{setting}, {when}: every row needs a finite logit (-inf only for classes a task excludes)"
                )
                again = learner.predict(x, task)
                assert torch.equal(out, again), f"{setting}, {when}: predicting twice must give identical logits"
            s.train(learner, stream, 2)


def _check_observe(s: LearnerSubject) -> None:
    """`observe` returns the batch's `StepStats` (n, n_correct, loss_sum) and leaves the batch unchanged."""
    for setting, stream in _streams().items():
        learner = s.build(stream)
        for i in range(2):
            for batch in _batches(stream, i):
                before = (batch.x.clone(), batch.y.clone(), None if batch.task is None else batch.task.clone())
                stats = learner.observe(batch)
                assert torch.equal(batch.x, before[0]) and torch.equal(batch.y, before[1]) and (
                    batch.task is None or torch.equal(batch.task, before[2])
                ), f"{setting}: observe(batch) changed the batch's tensors in place; work on copies"
                assert isinstance(stats, StepStats), f"{setting}: observe must return a StepStats, got {type(stats).__name__}"
                assert stats.n == len(batch), f"{setting}: StepStats.n must be the batch size {len(batch)}, got {stats.n}"
                assert 0 <= stats.n_correct <= stats.n, f"{setting}: StepStats.n_correct {stats.n_correct} outside [0, n]"
                assert math.isfinite(stats.loss_sum) and stats.loss_sum >= 0, (
                    f"{setting}: StepStats.loss_sum must be a finite, non-negative sum over the batch, got {stats.loss_sum}"
                )
            learner.end_chunk()


def _check_rejects_bad_labels(s: LearnerSubject) -> None:
    """A label outside the head raises `DataError`."""
    stream = _streams()["class_incremental"]
    learner = s.build(stream)
    bad = Batch(torch.zeros(2, *stream.input_shape), torch.tensor([0, stream.n_classes]))
    try:
        learner.observe(bad)
    except DataError:
        return
    raise AssertionError(
        f"observe accepted label {stream.n_classes} with a {stream.n_classes}-class head; raise "
        "lifelong.errors.DataError (Learner.check_batch does)"
    )


def _check_round_trip(s: LearnerSubject) -> None:
    """A learner restored from `torch.save`d state predicts and continues exactly like the original."""
    for setting, stream in _streams().items():
        learner = s.build(stream)
        s.train(learner, stream, 2)
        clone = s.build(stream, seed=123)  # a different init: everything must come from the state
        clone.load_state_dict(_saved_and_loaded(learner.state_dict()))
        ev = stream.eval_sets[-1]
        assert torch.equal(learner.predict(ev.x, ev.task), clone.predict(ev.x, ev.task)), (
            f"{setting}: a learner restored from state_dict() predicts differently; put every tensor the "
            "predictions depend on in state_dict and restore it in load_state_dict"
        )
        batch = _batches(stream, 2, seed=2)[0]
        a, b = learner.observe(batch), clone.observe(batch)
        assert a == b and torch.equal(learner.predict(ev.x, ev.task), clone.predict(ev.x, ev.task)), (
            f"{setting}: after a restore the next observe differs ({a} vs {b}); the state must include the "
            "optimiser, the generators and any memory"
        )


def _check_deterministic(s: LearnerSubject) -> None:
    """The same seed gives an identical log; another seed a different one."""
    for setting, stream in _run_settings(s).items():
        first = s.records(stream, seed=3)
        second = s.records(stream, seed=3)
        for a, b in zip(first, second):
            assert a == b, f"{setting}: the same seed gave different records:\n{a}\n{b}\ndraw every random number from a generator seeded by `seed`"
        assert len(first) == len(second)
        assert first != s.records(stream, seed=4), f"{setting}: seeds 3 and 4 gave identical logs; use `seed`"


def _check_global_random_state(s: LearnerSubject) -> None:
    """Training and predicting leave torch's, numpy's and `random`'s global states untouched."""
    for setting, stream in _streams().items():
        before = _GlobalRandomState()
        learner = s.build(stream)
        s.train(learner, stream, 3)
        learner.predict(stream.eval_sets[0].x, stream.eval_sets[0].task)
        changed = before.changed()
        assert not changed, (
            f"{setting}: the learner used the global random state of {'; '.join(changed)}; draw from a "
            "torch.Generator seeded from `seed` (lifelong.seeding.derive_seed) instead"
        )


def _check_no_task_ids_in_class_incremental(s: LearnerSubject) -> None:
    """In a class-incremental run the learner is never handed task ids."""
    stream = _streams()["class_incremental"]
    learner = s.build(stream)
    seen: list[Any] = []

    class Spy:
        """Forwards everything to the learner; records the task ids it is given."""

        def __getattr__(self, name: str) -> Any:
            return getattr(learner, name)

        def observe(self, batch: Batch) -> StepStats:
            seen.append(batch.task)
            return learner.observe(batch)

        def predict(self, x: Tensor, task: Tensor | None = None) -> Tensor:
            seen.append(task)
            return learner.predict(x, task)

    list(iter_run(stream, Spy(), LoopConfig(batch_size=BATCH), seed=0))  # type: ignore[arg-type]
    assert seen and all(t is None for t in seen), "a class-incremental learner was handed task ids"


def _check_end_chunk(s: LearnerSubject) -> None:
    """`end_chunk` changes `state_dict()` exactly when `needs_boundaries` is True."""
    for setting, stream in _streams().items():
        learner = s.build(stream)
        # the instance's value: added loss terms (an EWC term on ER) can make an instance need boundaries
        needs = getattr(learner, "needs_boundaries", None)
        assert isinstance(needs, bool), "`needs_boundaries` must be True or False"
        for batch in _batches(stream, 0):
            learner.observe(batch)
        before = _snapshot(learner.state_dict())
        learner.end_chunk()
        d = _difference(before, learner.state_dict())
        if needs:
            assert d is not None, (
                f"{setting}: needs_boundaries is True but end_chunk() left state_dict() unchanged; set "
                "needs_boundaries = False, or put what end_chunk computes in the state"
            )
        else:
            assert d is None, (
                f"{setting}: needs_boundaries is False but end_chunk() changed the state ({d}); set "
                "needs_boundaries = True (the method then needs announced chunk boundaries)"
            )


def _check_learns(s: LearnerSubject) -> None:
    """Above chance (>= 0.6, chance 0.25) after 3 epochs on one stationary chunk of 4 easy classes."""
    stream = _easy_stream()
    learner = s.build(stream)
    records = list(iter_run(stream, learner, LoopConfig(epochs=3, batch_size=BATCH), seed=0))
    final = [r for r in records if r.kind == "eval" and r.chunk == 0 and r.boundary]
    assert final, "the loop produced no boundary evaluation"
    acc = final[-1].n_correct / final[-1].n
    assert acc >= EASY_ACCURACY, (
        f"accuracy {acc:.2f} after 3 epochs on one stationary chunk of 4 well-separated classes (chance 0.25, "
        f"needed {EASY_ACCURACY}); predict must use the trained model and observe must update it"
    )


def _check_capabilities(s: LearnerSubject) -> None:
    """Declared capabilities (`consolidate`, `update_memory`, `on_drift`) run and leave the learner usable."""
    for setting, stream in _streams().items():
        learner = s.build(stream)
        s.train(learner, stream, 1)
        batch = _batches(stream, 1)[0]
        copies = (batch.x.clone(), batch.y.clone())
        if isinstance(learner, Consolidator):
            stats = learner.consolidate(batch, torch.Generator().manual_seed(0))
            assert isinstance(stats, StepStats) and stats.n > 0 and 0 <= stats.n_correct <= stats.n, (
                f"{setting}: consolidate(batch, generator) must return the step's counts (a SleepStats), got {stats!r}"
            )
            assert math.isfinite(stats.loss_sum), f"{setting}: consolidate gave a non-finite loss_sum"
        if isinstance(learner, MemoryUpdater):
            out = learner.update_memory(batch)
            assert isinstance(out, Tensor) and out.shape == (len(batch), stream.n_classes), (
                f"{setting}: update_memory(batch) must return the batch's (B, n_classes) logits before the update"
            )
        if isinstance(learner, DriftAware):
            assert learner.on_drift() is None, f"{setting}: on_drift() returns nothing"
        assert torch.equal(batch.x, copies[0]) and torch.equal(batch.y, copies[1]), (
            f"{setting}: a capability method changed its batch in place"
        )
        learner.observe(batch)  # and the learner carries on
        out = learner.predict(stream.eval_sets[0].x, stream.eval_sets[0].task)
        assert torch.isfinite(out.max(1).values).all(), f"{setting}: predictions are not finite after the capabilities ran"


#: ``(name, check)``: every learner check, in the order :func:`check_learner` runs them.
LEARNER_CHECKS: list[tuple[str, Callable[[LearnerSubject], None]]] = [
    ("follows_the_protocol", _check_protocol),
    ("hyper_parameters_stored_as_given", _check_hyper_parameters),
    ("predict_shape_and_finite", _check_predict),
    ("observe_counts_and_leaves_its_input_alone", _check_observe),
    ("rejects_labels_outside_the_head", _check_rejects_bad_labels),
    ("state_dict_round_trip", _check_round_trip),
    ("same_seed_same_log", _check_deterministic),
    ("no_global_random_state", _check_global_random_state),
    ("never_sees_task_ids_in_class_incremental", _check_no_task_ids_in_class_incremental),
    ("end_chunk_changes_state_iff_needs_boundaries", _check_end_chunk),
    ("declared_capabilities_work", _check_capabilities),
    ("learns_above_chance_on_an_easy_stream", _check_learns),
]


def _named(what: str, name: str, fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` whose failures are an AssertionError naming the check (other errors included)."""

    @functools.wraps(fn)
    def run() -> None:
        try:
            fn()
        except AssertionError as e:
            raise AssertionError(f"{what} fails check {name!r}: {e}") from None
        except Exception as e:
            raise AssertionError(f"{what} fails check {name!r}: it raised {type(e).__name__}: {e}") from e

    run.__name__ = run.__qualname__ = name
    return run


def _describe(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def learner_checks(cls: type, **hyper_parameters: Any) -> list[tuple[str, Callable[[], None]]]:
    """The learner checks for ``cls`` built with ``hyper_parameters``, as ``(name, check)`` pairs.

    Each ``check()`` takes no argument and raises :class:`AssertionError` naming the check and the fix.
    Nothing runs until a check is called.
    """
    reserved = sorted(set(hyper_parameters) & set(RESERVED))
    if reserved:
        raise TypeError(f"{', '.join(reserved)} are set by each check; do not pass them")
    subject = LearnerSubject(cls, dict(hyper_parameters))
    return [(name, _named(_describe(cls), name, functools.partial(fn, subject))) for name, fn in LEARNER_CHECKS]


def _run_all(what: str, checks: list[tuple[str, Callable[[], None]]]) -> None:
    failures = []
    for _, check in checks:
        try:
            check()
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        raise AssertionError(f"{len(failures)} of {len(checks)} checks failed:\n- " + "\n- ".join(failures))


def check_learner(cls: type, **hyper_parameters: Any) -> None:
    """Run every learner check on ``cls`` (built with ``hyper_parameters``).

    Raises
    ------
    AssertionError
        Listing each failed check by name, with what to fix.
    """
    _run_all(_describe(cls), learner_checks(cls, **hyper_parameters))


# -- memory checks --------------------------------------------------------------------------------
def _memory_batch(n: int, start: int = 0, dim: int = 3) -> Batch:
    """Rows ``start .. start+n-1``: x = the row number in every column, y = row number mod 5, so a
    stored sample's label can be checked against its input."""
    y = torch.arange(start, start + n) % 5
    return Batch(torch.arange(start, start + n, dtype=torch.float32).unsqueeze(1).repeat(1, dim), y)


def _logits_of(b: Batch) -> Tensor:
    return b.x[:, :1].clone()  # (B, 1): an extra field equal to the row number


@dataclass
class MemorySubject:
    cls: type
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, capacity: int, seed: int = 0) -> Any:
        return self.cls(capacity, seed=seed, **self.options)


def _check_memory_protocol(s: MemorySubject) -> None:
    """Satisfies the `Memory` protocol; a new memory is empty."""
    mem = s.build(10)
    assert isinstance(mem, Memory), "implement add, sample, __len__, state_dict and load_state_dict (lifelong.learn.memory.Memory)"
    assert len(mem) == 0, f"a new memory must be empty, len() is {len(mem)}"


def _check_capacity(s: MemorySubject) -> None:
    """Never holds more than `capacity`; fills up; preallocated storage is written in place."""
    mem = s.build(20)
    mem.add(_memory_batch(7))
    storage = getattr(mem, "x", None)
    for i in range(10):
        mem.add(_memory_batch(7, start=7 * (i + 1)))
        assert len(mem) <= 20, f"len() is {len(mem)} with capacity 20"
    assert len(mem) == 20, f"after 77 samples a memory of capacity 20 must be full, len() is {len(mem)}"
    if isinstance(storage, Tensor):
        assert mem.x is storage, "the storage tensor `x` was replaced: preallocate it once and write in place"
        assert storage.shape[0] == 20, f"preallocate `capacity` rows, got {storage.shape[0]}"
    if hasattr(mem, "n_seen"):
        assert mem.n_seen == 77, f"n_seen must count every sample offered (77), got {mem.n_seen}"


def _check_sample(s: MemorySubject) -> None:
    """`sample(n)` returns min(n, len) distinct stored pairs, with their extra fields aligned."""
    mem = s.build(10)
    for i in range(5):
        b = _memory_batch(6, start=6 * i)
        mem.add(b, logits=_logits_of(b))
    out = mem.sample(4, torch.Generator().manual_seed(7))
    assert isinstance(out, Batch), f"sample must return a Batch, got {type(out).__name__}"
    assert out.x.shape == (4, 3) and out.y.shape == (4,), f"sample(4) shapes {tuple(out.x.shape)}, {tuple(out.y.shape)}; want (4, 3), (4,)"
    assert torch.equal(out.x[:, 0].long() % 5, out.y), "sampled inputs and labels are not stored pairs"
    assert "logits" in out.extras and out.extras["logits"].shape == (4, 1), "extra fields given to add must come back from sample"
    assert torch.equal(out.extras["logits"][:, 0], out.x[:, 0]), "sampled extra fields are not aligned with their inputs"
    assert len(set(out.x[:, 0].tolist())) == 4, "sample(n) must draw distinct stored samples (without replacement)"
    many = mem.sample(50, torch.Generator().manual_seed(7))
    assert len(many) == len(mem), f"sample(n) with n > len() must return len() = {len(mem)} samples, got {len(many)}"


def _check_generator(s: MemorySubject) -> None:
    """Sampling depends only on the given generator and leaves the memory and global RNGs alone."""
    before = _GlobalRandomState()
    mem = s.build(10)
    for i in range(5):
        mem.add(_memory_batch(6, start=6 * i))
    state = _snapshot(mem.state_dict())
    a = mem.sample(4, torch.Generator().manual_seed(7))
    b = mem.sample(4, torch.Generator().manual_seed(7))
    changed = before.changed()
    assert not changed, f"add/sample used the global random state of {'; '.join(changed)}; use the generators"
    assert torch.equal(a.x, b.x), "two generators with the same seed drew different samples: sample only with `generator`"
    d = _difference(state, mem.state_dict())
    assert d is None, f"sample() changed the memory ({d}); sampling must only read"
    draws = {tuple(mem.sample(4, torch.Generator().manual_seed(seed)).x[:, 0].tolist()) for seed in range(8)}
    assert len(draws) > 1, "eight generator seeds drew the same samples: sample must depend on `generator`"


def _check_memory_round_trip(s: MemorySubject) -> None:
    """A memory restored from its state continues (adds, samples) exactly like the original."""
    mem = s.build(10)
    for i in range(4):
        mem.add(_memory_batch(6, start=6 * i))
    clone = s.build(10, seed=99)
    clone.load_state_dict(_saved_and_loaded(mem.state_dict()))
    assert len(clone) == len(mem), "the restored memory has a different length"
    for m in (mem, clone):
        m.add(_memory_batch(6, start=100))  # insertion decisions must continue identically
    a, b = mem.sample(10, torch.Generator().manual_seed(0)), clone.sample(10, torch.Generator().manual_seed(0))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), (
        "a memory restored from state_dict() diverges after the next add; save its samples and its generator"
    )


def _check_memory_alias(s: MemorySubject) -> None:
    """Stored samples are copies: changing the batch later does not change the memory."""
    mem = s.build(10)
    b = _memory_batch(6)
    mem.add(b)
    b.x.add_(1000)
    assert float(mem.sample(10, torch.Generator().manual_seed(0)).x.max()) < 1000, (
        "the memory aliases the batch it was given: copy samples into its own storage"
    )


#: ``(name, check)``: every memory check, in the order :func:`check_memory` runs them.
MEMORY_CHECKS: list[tuple[str, Callable[[MemorySubject], None]]] = [
    ("follows_the_protocol", _check_memory_protocol),
    ("capacity_never_exceeded", _check_capacity),
    ("sample_shapes_and_stored_pairs", _check_sample),
    ("sampling_uses_only_the_given_generator", _check_generator),
    ("state_dict_round_trip", _check_memory_round_trip),
    ("does_not_alias_its_input", _check_memory_alias),
]


def memory_checks(cls: type, **options: Any) -> list[tuple[str, Callable[[], None]]]:
    """The memory checks for ``cls(capacity, seed=..., **options)``, as ``(name, check)`` pairs."""
    if "seed" in options:
        raise TypeError("seed is set by each check; do not pass it")
    subject = MemorySubject(cls, dict(options))
    return [(name, _named(_describe(cls), name, functools.partial(fn, subject))) for name, fn in MEMORY_CHECKS]


def check_memory(cls: type, **options: Any) -> None:
    """Run every memory check on ``cls`` (built as ``cls(capacity, seed=seed, **options)``).

    Raises
    ------
    AssertionError
        Listing each failed check by name, with what to fix.
    """
    _run_all(_describe(cls), memory_checks(cls, **options))
